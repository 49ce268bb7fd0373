/** The panel's formatters read exactly like `cellbox.text` in Python: both check tests/format_cases.json. */
import { readFileSync } from 'fs';
import { join } from 'path';

import { formatBytes, formatCountdown, formatMemory, formatTimeLeft, isLive, secondsLeft } from '../format';
import { LIVE_STATUSES, MEMORY_LIMITS } from '../tokens';

interface ICases {
  memory_limits: string[];
  live_statuses: (string | null)[];
  size: { bytes: number | null; text: string }[];
  memory: { limit: string | null; text: string }[];
  countdown: { seconds: number | null; text: string }[];
  time_left: {
    status: string | null;
    expires_at: number | null;
    now: number;
    seconds: number | null;
    text: string;
  }[];
}

const cases: ICases = JSON.parse(
  readFileSync(join(__dirname, '..', '..', '..', 'tests', 'format_cases.json'), 'utf8')
);

describe('the shared constants', () => {
  it('are the memory limits the form offers', () => {
    expect([...MEMORY_LIMITS]).toEqual(cases.memory_limits);
  });

  it('are the statuses that count as live', () => {
    expect([...LIVE_STATUSES]).toEqual(cases.live_statuses);
    for (const status of cases.live_statuses) {
      expect(isLive(status)).toBe(true);
    }
    expect(isLive(undefined)).toBe(true);
    expect(isLive('expired')).toBe(false);
    expect(isLive('deleted')).toBe(false);
  });
});

describe('formatBytes', () => {
  it.each(cases.size.map(c => [c.bytes, c.text]))('%p bytes read %p', (bytes, text) => {
    expect(formatBytes(bytes as number | null)).toBe(text);
  });
});

describe('formatMemory', () => {
  it.each(cases.memory.map(c => [c.limit, c.text]))('%p reads %p', (limit, text) => {
    expect(formatMemory(limit)).toBe(text);
  });
});

describe('formatCountdown', () => {
  it.each(cases.countdown.map(c => [c.seconds, c.text]))('%p seconds read %p', (seconds, text) => {
    expect(formatCountdown(seconds as number | null)).toBe(text);
  });
});

describe('time left', () => {
  it.each(cases.time_left.map(c => [c.status, c.now, c]))('%p at %p', (_status, _now, c) => {
    const container = c as ICases['time_left'][number];
    expect(secondsLeft(container, container.now)).toBe(container.seconds);
    expect(formatTimeLeft(container, container.now)).toBe(container.text);
  });
});
