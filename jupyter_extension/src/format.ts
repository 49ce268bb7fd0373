/** How sizes and times read in the panel. */

export function formatBytes(bytes: number | null): string {
  if (bytes === null || bytes === undefined) {
    return '–';
  }
  if (bytes < 1000) {
    return `${bytes} B`;
  }
  const units = ['KB', 'MB', 'GB', 'TB'];
  let size = bytes;
  let unit = 'B';
  for (const next of units) {
    if (size < 1000) {
      break;
    }
    size /= 1000;
    unit = next;
  }
  return `${size < 10 ? size.toFixed(1) : Math.round(size)} ${unit}`;
}

/** `4:05`, `1h 02m`: the time left before a container expires. */
export function formatCountdown(seconds: number): string {
  if (seconds <= 0) {
    return 'now';
  }
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) {
    return `${h}h ${String(m).padStart(2, '0')}m`;
  }
  return `${m}:${String(s).padStart(2, '0')}`;
}

export function formatMemory(memory: string | null): string {
  return memory ? memory.toUpperCase().replace(/G$/, ' GB') : '–';
}
