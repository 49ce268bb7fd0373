/** The form takes the names the server extension takes: both check tests/format_cases.json. */
import { readFileSync } from 'fs';
import { join } from 'path';

import { containerNameProblem } from '../names';

const cases: { container_name: { name: string; problem: string | null }[] } = JSON.parse(
  readFileSync(join(__dirname, '..', '..', '..', 'tests', 'format_cases.json'), 'utf8')
);

describe('containerNameProblem', () => {
  it('has cases to check', () => {
    expect(cases.container_name.length).toBeGreaterThan(10);
  });

  it.each(cases.container_name.map(c => [JSON.stringify(c.name), c] as const))(
    'says of %s what Python says',
    (_, c) => {
      expect(containerNameProblem(c.name)).toBe(c.problem);
    }
  );
});
