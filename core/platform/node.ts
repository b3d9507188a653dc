import { curveBackendChoiceFromEnv, selectCurveBackend, type CurveBackendChoice, type CurveBackendSelection } from '../curve-native.ts';
import { setCurveBackend } from '../curve-backend.ts';
import { installNodeCryptoPaths } from '../node-crypto.ts';
import { installNodeMemberSignatureCheck } from '../node-ed25519.ts';
import { installSodiumSubgroupCheck } from '../sodium-ed25519.ts';

/**
 * What `#platform` is in Node (package.json "imports", condition `node`): importing the package
 * puts libsecp256k1 (when its addon loads) and the synchronous node:crypto RSA-OAEP and AES-GCM
 * paths in place, and libsodium's Ed25519 subgroup check when its addon loads, so an application
 * gets the fast paths without a setup call. TKMS_CURVE_BACKEND=noble still forces the pure-JS
 * curves (servers validate the variable strictly at start, runtime/curve-setup.ts; an import must
 * not throw over it).
 */
function choiceFromEnv(): CurveBackendChoice {
  try {
    return curveBackendChoiceFromEnv();
  } catch {
    return 'auto';
  }
}

function select(): CurveBackendSelection {
  try {
    return selectCurveBackend(choiceFromEnv());
  } catch {
    // `native` without the addon: the server start-up reports it; an import falls back.
    return selectCurveBackend('noble');
  }
}

export const platformName = 'node';
export const curveSelection: CurveBackendSelection = select();

setCurveBackend(curveSelection.backend);
installNodeCryptoPaths();
installNodeMemberSignatureCheck();
installSodiumSubgroupCheck(choiceFromEnv() === 'noble');
