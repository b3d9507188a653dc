'use strict';
// Mocha's spec reporter, plus one plain closing line ("mocha: N passed, N failed, N skipped")
// that CI log readers recognise regardless of the test runner.
// With TKMS_TEST_TIMING=1 it also lists each spec file's wall time, hooks included (the suite
// budget is spent mostly in before/after hooks that start processes, which mocha does not time).
// Files run two at a time (.mocharc.json "parallel"), where mocha reports no suite timings: for
// them, run serially (`TKMS_TEST_TIMING=1 npx mocha --no-parallel`).
const path = require('node:path');
const Mocha = require('mocha');
const { EVENT_RUN_END, EVENT_SUITE_BEGIN, EVENT_SUITE_END } = Mocha.Runner.constants;

function recordFileTimes(runner) {
  const perFile = new Map();
  const open = new Map();
  runner.on(EVENT_SUITE_BEGIN, (suite) => {
    if (!suite.file || suite.parent?.root !== true) return;
    open.set(suite, Date.now());
  });
  runner.on(EVENT_SUITE_END, (suite) => {
    const start = open.get(suite);
    if (start === undefined) return;
    open.delete(suite);
    const file = path.relative(process.cwd(), suite.file);
    const entry = perFile.get(file) ?? { ms: 0, tests: 0 };
    entry.ms += Date.now() - start;
    entry.tests += suite.total();
    perFile.set(file, entry);
  });
  return perFile;
}

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const perFile = process.env.TKMS_TEST_TIMING === '1' ? recordFileTimes(runner) : undefined;
    runner.once(EVENT_RUN_END, () => {
      if (perFile !== undefined) {
        const rows = [...perFile.entries()].sort((a, b) => b[1].ms - a[1].ms);
        process.stdout.write(rows.length > 0 ? '\nwall time per file (hooks included):\n' : '\nno per-file times in a parallel run: TKMS_TEST_TIMING=1 npx mocha --no-parallel\n');
        for (const [file, { ms, tests }] of rows) {
          process.stdout.write(`${(ms / 1000).toFixed(1).padStart(8)} s  ${String(tests).padStart(4)} tests  ${file}\n`);
        }
      }
      const s = runner.stats ?? {};
      process.stdout.write(`\nmocha: ${s.passes ?? 0} passed, ${s.failures ?? 0} failed, ${s.pending ?? 0} skipped\n`);
    });
  }
}

module.exports = SummaryReporter;
