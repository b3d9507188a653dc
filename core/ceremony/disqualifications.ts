/**
 * Why this member holds participants at fault (`disqualified()`), by the kind's label for a role and
 * id: a reshare names them by role ("from:3"), a DKG by plain id ("3"). The last reason noted wins.
 */
export class Disqualifications {
  private readonly reasons: Record<string, string> = {};

  constructor(readonly label: (role: 'from' | 'to', id: number) => string) {}

  note(role: 'from' | 'to', id: number, reason: string): void {
    this.reasons[this.label(role, id)] = reason;
  }

  all(): Record<string, string> {
    return { ...this.reasons };
  }
}
