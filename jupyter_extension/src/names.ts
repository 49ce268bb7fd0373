/**
 * Which names the sidebar takes for a new container: the rule the server extension applies
 * (`cellbox.common.names` in Python). Both are checked against `tests/format_cases.json`: change them together.
 */

/** The longest name, in characters. */
export const NAME_MAX = 64;

const ALLOWED = /^[A-Za-z0-9._-]$/;
const FIRST = /^[A-Za-z0-9]$/;

/** What is wrong with `name` as a new container's name, in one line; null when it is a good one. */
export function containerNameProblem(name: string): string | null {
  // By code point, as Python counts a string's characters.
  const chars = Array.from(name);
  if (chars.length === 0) {
    return 'a container needs a name';
  }
  if (chars.length > NAME_MAX) {
    return `a container name has at most ${NAME_MAX} characters; this one has ${chars.length}`;
  }
  const bad = [...new Set(chars.filter(char => !ALLOWED.test(char)))];
  if (bad.length) {
    const shown = bad.map(char => `'${char}'`).join(', ');
    return `a container name has only letters, digits, '-', '_' and '.'; not ${shown}`;
  }
  if (!FIRST.test(chars[0])) {
    return 'a container name starts with a letter or a digit';
  }
  return null;
}
