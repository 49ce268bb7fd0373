/**
 * What the panel's rows say, in plain words: a container's state and time left, where a file came from. No
 * rendering here (the components draw it), so the wording is tested on its own.
 */
import { formatCountdown } from './format';
import { IContainer } from './tokens';

/** One human line for a container that is no longer there. */
export function goneLine(status: string | null): string | null {
  if (status === 'expired') {
    return 'Expired: its files and Python state are gone.';
  }
  if (status === 'deleted') {
    return 'Deleted: its files are gone.';
  }
  return null;
}

/**
 * What a container's row says of it, and the dot beside it: gone, past its time (the server expires it at its next
 * look), its Python state lost (files kept), or the time it has left.
 */
export function rowState(
  container: IContainer,
  secondsLeft: number | null
): { dot: string; text: string; title: string; warn: boolean } {
  const status = container.status ?? 'unknown';
  const gone = goneLine(container.status);
  if (gone) {
    return { dot: status, text: gone, title: gone, warn: false };
  }
  if (secondsLeft === 0) {
    return {
      dot: 'expiring',
      text: 'expiring now',
      title: 'Idle past its expiry: it is being expired',
      warn: true
    };
  }
  const left = secondsLeft === null ? status : `expires in ${formatCountdown(secondsLeft)}`;
  if (container.state_lost) {
    return {
      dot: 'lost',
      text: `state lost · ${left}`,
      title: `Its Python state is gone (${container.state_lost}): variables and imports of earlier cells must be run again; files are kept`,
      warn: false
    };
  }
  return {
    dot: status,
    text: left,
    title: 'Time to expiry if left idle',
    warn: secondsLeft !== null && secondsLeft < 120
  };
}

/** What the API's `source` of a file means, in plain words: who put it there. */
export function sourceLabel(source: string): { text: string; title: string } {
  if (source === 'user') {
    return { text: 'uploaded', title: 'Uploaded into the container (a push, --files or this panel)' };
  }
  if (source === 'assistant') {
    return { text: 'made in the container', title: 'Written by code that ran in the container' };
  }
  return { text: source, title: 'Where the file came from, as the service says' };
}
