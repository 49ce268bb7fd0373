/**
 * How sizes, memory and time left read in the panel: the same text as `cellbox.common.text` in Python (the command
 * line and the notebook tables). Both are checked against `tests/format_cases.json`: change them together.
 */
import { IContainer, LIVE_STATUSES } from './tokens';

/** What every formatter shows for a value the server didn't give. */
export const NONE = '-';

const SCALES: readonly [string, number][] = [
  ['kB', 1e3],
  ['MB', 1e6],
  ['GB', 1e9]
];

/** `12 B`, `2.5 kB`, `1.2 GB` (SI units, as file browsers show them; one decimal, halves rounded up). */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) {
    return NONE;
  }
  if (bytes < 1000) {
    return `${bytes} B`;
  }
  // Integer arithmetic, so every language rounds alike: 999950 bytes is `1.0 MB`, not `1000.0 kB`.
  const tenths = (scale: number) => Math.floor((bytes * 10 + scale / 2) / scale);
  const [unit, scale] = SCALES.find(([, scale]) => tenths(scale) < 10000) ?? SCALES[SCALES.length - 1];
  const rounded = tenths(scale);
  return `${Math.floor(rounded / 10)}.${rounded % 10} ${unit}`;
}

/** A memory limit as the API spells it (`1g`, `4g`, `16g`, `64g`). */
export function formatMemory(limit: string | null | undefined): string {
  return limit || NONE;
}

/** `19m 59s` for whole seconds left, `now` once none are; `-` when unknown. */
export function formatCountdown(seconds: number | null): string {
  if (seconds === null) {
    return NONE;
  }
  if (seconds <= 0) {
    return 'now';
  }
  return `${Math.floor(seconds / 60)}m ${String(seconds % 60).padStart(2, '0')}s`;
}

/** Whether a container with this status is up and counting down to expiry. */
export function isLive(status: string | null | undefined): boolean {
  return LIVE_STATUSES.includes(status ?? null);
}

/**
 * Whole seconds until `container` expires if left idle, at Unix time `now` (0 once past); null when it isn't
 * live or the server doesn't say.
 */
export function secondsLeft(
  container: Pick<IContainer, 'status' | 'expires_at'>,
  now: number
): number | null {
  if (!isLive(container.status) || container.expires_at === null || container.expires_at === undefined) {
    return null;
  }
  return Math.max(0, Math.floor(container.expires_at - now));
}

/** Time until `container` expires if left idle, `19m 59s`; `-` when it isn't live or the server doesn't say. */
export function formatTimeLeft(container: Pick<IContainer, 'status' | 'expires_at'>, now: number): string {
  return formatCountdown(secondsLeft(container, now));
}
