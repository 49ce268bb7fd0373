/** What a container's row and a file's chip say: plain words, never `expires in now` beside a green dot. */
import { rowState, sourceLabel } from '../labels';
import { IContainer } from '../tokens';

function container(fields: Partial<IContainer> = {}): IContainer {
  return { id: 'cntr_a', name: 'a', status: 'running', memory_limit: '1g', expires_at: 100, ...fields };
}

describe('rowState', () => {
  it('counts down a running container, warning in its last two minutes', () => {
    expect(rowState(container(), 600)).toMatchObject({
      dot: 'running',
      text: 'expires in 10m 00s',
      warn: false
    });
    expect(rowState(container(), 90)).toMatchObject({
      dot: 'running',
      text: 'expires in 1m 30s',
      warn: true
    });
  });

  it('says a container past its time is expiring, not green', () => {
    const state = rowState(container(), 0);
    expect(state.text).toBe('expiring now');
    expect(state.dot).toBe('expiring');
    expect(state.text).not.toContain('expires in now');
  });

  it('says a container whose Python state is gone, and why in its title', () => {
    const lost = container({ state_lost: 'the server restarted since its last run' });
    const state = rowState(lost, 600);
    expect(state.dot).toBe('lost');
    expect(state.text).toBe('state lost · expires in 10m 00s');
    expect(state.title).toContain('the server restarted since its last run');
    expect(state.title).toContain('files are kept');
  });

  it('says a gone container is gone, whatever else it carries', () => {
    const expired = container({ status: 'expired', state_lost: 'x' });
    expect(rowState(expired, null)).toMatchObject({
      dot: 'expired',
      text: 'Expired: its files and Python state are gone.'
    });
  });
});

describe('sourceLabel', () => {
  it("speaks of who put the file there, not the API's roles", () => {
    expect(sourceLabel('user').text).toBe('uploaded');
    expect(sourceLabel('assistant').text).toBe('made in the container');
    expect(sourceLabel('something-new').text).toBe('something-new');
  });
});
