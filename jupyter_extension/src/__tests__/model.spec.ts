/** The sidebar's model against a mocked `requestAPI`: what it asks the server extension, and what it keeps. */
import { CellboxCallError, requestAPI } from '../handler';
import { ContainersModel } from '../model';
import { IContainer, IContainerFile } from '../tokens';

jest.mock('../handler', () => ({
  ...jest.requireActual('../handler'),
  requestAPI: jest.fn()
}));

const mockRequest = requestAPI as jest.MockedFunction<typeof requestAPI>;

type Route = (init: { method?: string; body?: unknown }) => unknown;

/** Answer `requestAPI` from a table of `METHOD endpoint` routes; anything else fails like a 404 would. */
function serve(routes: Record<string, Route | unknown>): void {
  mockRequest.mockImplementation(async (endPoint: string, init = {}) => {
    const key = `${init.method ?? 'GET'} ${endPoint}`;
    if (!(key in routes)) {
      throw new CellboxCallError(`no route ${key}`, 404);
    }
    const route = routes[key];
    return typeof route === 'function' ? (route as Route)(init) : route;
  });
}

/** The endpoints requested so far, as `METHOD endpoint`. */
function requested(): string[] {
  return mockRequest.mock.calls.map(([endPoint, init]) => `${init?.method ?? 'GET'} ${endPoint}`);
}

function container(id: string, fields: Partial<IContainer> = {}): IContainer {
  return { id, name: id, status: 'running', memory_limit: '1g', expires_at: null, ...fields };
}

function file(id: string, name: string): IContainerFile {
  return { id, name, path: `/mnt/data/${name}`, bytes: 12, source: 'user' };
}

const STATUS = { backend: 'local', base_url: 'http://127.0.0.1:8123/v1' };
const NOW = 1_700_000_000;

describe('ContainersModel', () => {
  let model: ContainersModel;

  beforeEach(() => {
    mockRequest.mockReset();
    model = new ContainersModel({ interval: 60 * 60 * 1000 });
  });

  afterEach(() => {
    model.dispose();
    jest.restoreAllMocks();
  });

  it('loads the status and the containers, leaving out deleted ones', async () => {
    serve({
      'GET status': STATUS,
      'GET containers': {
        data: [container('cntr_a'), container('cntr_gone', { status: 'deleted' }), container('cntr_b')],
        now: NOW
      }
    });
    let changes = 0;
    model.changed.connect(() => changes++);
    expect(model.loading).toBe(true);

    await model.refresh();

    expect(model.loading).toBe(false);
    expect(model.backendStatus).toEqual(STATUS);
    expect(model.containers.map(c => c.id)).toEqual(['cntr_a', 'cntr_b']);
    expect(model.error).toBeNull();
    expect(changes).toBeGreaterThan(0);
    expect(requested()).toEqual(['GET status', 'GET containers']);
  });

  it('counts down on the server clock, whatever the browser clock says', async () => {
    serve({
      'GET status': STATUS,
      'GET containers': {
        data: [
          container('cntr_live', { expires_at: NOW + 1200 }),
          container('cntr_old', { status: 'expired', expires_at: NOW + 1200 }),
          container('cntr_unknown', { expires_at: null })
        ],
        now: NOW
      }
    });
    const browserNow = (NOW - 3600) * 1000; // the browser's clock is an hour behind the server's
    jest.spyOn(Date, 'now').mockReturnValue(browserNow);
    await model.refresh();

    const [live, expired, unknown] = model.containers;
    expect(model.secondsLeft(live)).toBe(1200);
    expect(model.secondsLeft(expired)).toBeNull();
    expect(model.secondsLeft(unknown)).toBeNull();

    jest.spyOn(Date, 'now').mockReturnValue(browserNow + 1500);
    expect(model.secondsLeft(live)).toBe(1198);
    jest.spyOn(Date, 'now').mockReturnValue(browserNow + 2000 * 1000);
    expect(model.secondsLeft(live)).toBe(0);
  });

  it('keeps the last failure as the server worded it, until a refresh succeeds', async () => {
    mockRequest.mockImplementation(async (endPoint: string) => {
      if (endPoint === 'status') {
        return STATUS;
      }
      throw new CellboxCallError('could not connect to the backend', 502, null);
    });
    await model.refresh();
    expect(model.error).toBe('could not connect to the backend');
    expect(model.loading).toBe(false);
    expect(model.backendStatus).toEqual(STATUS);

    serve({ 'GET status': STATUS, 'GET containers': { data: [container('cntr_a')], now: NOW } });
    await model.refresh();
    expect(model.error).toBeNull();
    expect(model.containers.map(c => c.id)).toEqual(['cntr_a']);
  });

  it('loads the files of the container it selects, ids escaped in the path', async () => {
    const id = 'cntr a/b';
    const files = [file('cfile_1', 'a.csv')];
    serve({
      'GET status': STATUS,
      'GET containers': { data: [container(id)], now: NOW },
      'GET containers/cntr%20a%2Fb/files': { data: files }
    });
    await model.refresh();
    const changed = new Promise<void>(resolve =>
      model.changed.connect(() => model.files.length && resolve())
    );

    model.select(id);
    await changed;

    expect(model.selected?.id).toBe(id);
    expect(model.files).toEqual(files);
    expect(requested()).toContain('GET containers/cntr%20a%2Fb/files');
  });

  it('forgets a selected container once the server no longer lists it', async () => {
    serve({
      'GET status': STATUS,
      'GET containers': { data: [container('cntr_a')], now: NOW },
      'GET containers/cntr_a/files': { data: [file('cfile_1', 'a.csv')] }
    });
    await model.refresh();
    model.select('cntr_a');
    await model.refresh();
    expect(model.files).toHaveLength(1);

    serve({ 'GET status': STATUS, 'GET containers': { data: [], now: NOW } });
    await model.refresh();

    expect(model.selected).toBeNull();
    expect(model.files).toEqual([]);
  });

  it('creates a container with the name and memory given, and selects it', async () => {
    const created = container('cntr_new', { name: 'analysis', memory_limit: '4g' });
    serve({
      'GET status': STATUS,
      'GET containers': { data: [created], now: NOW },
      'POST containers': created,
      'GET containers/cntr_new/files': { data: [] }
    });

    const answer = await model.createContainer({ name: 'analysis', memory_limit: '4g' });

    expect(answer).toEqual(created);
    expect(model.selected?.id).toBe('cntr_new');
    expect(mockRequest).toHaveBeenCalledWith('containers', {
      method: 'POST',
      body: { name: 'analysis', memory_limit: '4g' }
    });
    await model.refresh();
    expect(model.containers.map(c => c.id)).toEqual(['cntr_new']);
  });

  it('marks a container busy while it is deleted, then drops and deselects it', async () => {
    let busyDuring: boolean | undefined;
    serve({
      'GET status': STATUS,
      'GET containers': { data: [container('cntr_a'), container('cntr_b')], now: NOW },
      'GET containers/cntr_a/files': { data: [] },
      'DELETE containers/cntr_a': () => {
        busyDuring = model.busy.has('cntr_a');
        return { id: 'cntr_a', deleted: true };
      }
    });
    await model.refresh();
    model.select('cntr_a');

    await model.deleteContainer('cntr_a');

    expect(busyDuring).toBe(true);
    expect(model.busy.size).toBe(0);
    expect(model.containers.map(c => c.id)).toEqual(['cntr_b']);
    expect(model.selected).toBeNull();
  });

  it('a failed delete leaves the container listed and not busy', async () => {
    serve({
      'GET status': STATUS,
      'GET containers': { data: [container('cntr_a')], now: NOW }
    });
    await model.refresh();

    await expect(model.deleteContainer('cntr_a')).rejects.toThrow('no route DELETE containers/cntr_a');

    expect(model.containers.map(c => c.id)).toEqual(['cntr_a']);
    expect(model.busy.size).toBe(0);
  });

  it('downloads, uploads and deletes files of the selected container', async () => {
    serve({
      'GET status': STATUS,
      'GET containers': { data: [container('cntr_a')], now: NOW },
      'GET containers/cntr_a/files': { data: [file('cfile_1', 'a.csv'), file('cfile_2', 'b.png')] },
      'POST containers/cntr_a/files/cfile_1/download': { path: 'results/a.csv' },
      'POST containers/cntr_a/files': file('cfile_3', 'raw.csv'),
      'DELETE containers/cntr_a/files/cfile_2': { id: 'cfile_2', deleted: true }
    });
    await model.refresh();
    await expect(model.downloadFile('cfile_1', 'results')).rejects.toThrow('Select a container first.');
    model.select('cntr_a');
    await model.refresh();

    expect(await model.downloadFile('cfile_1', 'results', true)).toEqual({ path: 'results/a.csv' });
    expect(mockRequest).toHaveBeenCalledWith('containers/cntr_a/files/cfile_1/download', {
      method: 'POST',
      body: { directory: 'results', overwrite: true }
    });

    expect(await model.uploadFile('data/raw.csv')).toEqual(file('cfile_3', 'raw.csv'));
    expect(mockRequest).toHaveBeenCalledWith('containers/cntr_a/files', {
      method: 'POST',
      body: { path: 'data/raw.csv', overwrite: false, folder: '' }
    });

    await model.deleteFile('cfile_2');
    expect(model.files.map(f => f.id)).toEqual(['cfile_1']);
    expect(requested()).toContain('DELETE containers/cntr_a/files/cfile_2');
  });

  it("polls only the containers list, never the selected container's files (that would keep it alive)", async () => {
    jest.useFakeTimers();
    try {
      const fast = new ContainersModel({ interval: 1000 });
      serve({
        'GET status': STATUS,
        'GET containers': { data: [container('cntr_a')], now: NOW },
        'GET containers/cntr_a/files': { data: [file('cfile_1', 'a.csv')] }
      });
      const files = () => requested().filter(r => r === 'GET containers/cntr_a/files').length;
      fast.start();
      await jest.advanceTimersByTimeAsync(1500);
      fast.select('cntr_a'); // the user's choice: its files are fetched once
      await jest.advanceTimersByTimeAsync(5000);

      expect(requested().filter(r => r === 'GET containers').length).toBeGreaterThanOrEqual(5);
      expect(files()).toBe(1);
      expect(fast.files.map(f => f.id)).toEqual(['cfile_1']);

      const refreshed = fast.refresh(); // the refresh button is the user's action: files again, once
      await jest.advanceTimersByTimeAsync(3000);
      await refreshed;
      expect(files()).toBe(2);
      fast.dispose();
    } finally {
      jest.useRealTimers();
    }
  });

  it('stops polling when auto-refresh is turned off, and leaves no timer once disposed', async () => {
    jest.useFakeTimers();
    try {
      const fast = new ContainersModel({ interval: 1000 });
      serve({ 'GET status': STATUS, 'GET containers': { data: [], now: NOW } });
      fast.start();
      await jest.advanceTimersByTimeAsync(3500);
      const polled = requested().filter(r => r === 'GET containers').length;
      expect(polled).toBeGreaterThanOrEqual(3);

      fast.autoRefresh = false;
      await jest.advanceTimersByTimeAsync(5000);
      expect(requested().filter(r => r === 'GET containers').length).toBe(polled);
      fast.dispose();
      expect(jest.getTimerCount()).toBe(0);
    } finally {
      jest.useRealTimers();
    }
  });
  it('marks the container the active notebook uses, and those other notebooks use', async () => {
    serve({
      'GET status': STATUS,
      'GET containers': {
        data: [container('cntr_a'), container('cntr_b'), container('cntr_c')],
        now: NOW,
        in_use: { 'kernel-1': 'cntr_a', 'kernel-2': 'cntr_b' }
      }
    });
    await model.refresh();
    expect(model.usedBy('cntr_a')).toBe('other');
    model.activeKernel = 'kernel-1';
    expect(model.usedBy('cntr_a')).toBe('active');
    expect(model.usedBy('cntr_b')).toBe('other');
    expect(model.usedBy('cntr_c')).toBeNull();
  });

  it("hides cellbox's own files until asked, and never lists a gone container's files", async () => {
    serve({
      'GET status': STATUS,
      'GET containers': {
        data: [container('cntr_a'), container('cntr_old', { status: 'expired' })],
        now: NOW
      },
      'GET containers/cntr_a/files': { data: [file('f1', 'a.csv')], hidden: 3 },
      'GET containers/cntr_a/files?all=1': {
        data: [file('f1', 'a.csv'), file('f2', 'request.json')],
        hidden: 0
      }
    });
    await model.refresh();
    model.select('cntr_a');
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(model.files.map(f => f.name)).toEqual(['a.csv']);
    expect(model.hiddenFiles).toBe(3);
    model.showPrivate = true;
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(model.files.map(f => f.name)).toEqual(['a.csv', 'request.json']);
    model.select('cntr_old');
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(requested()).not.toContain('GET containers/cntr_old/files');
    expect(model.error).toBeNull();
  });

  it('uploads with overwrite only when asked', async () => {
    const bodies: unknown[] = [];
    serve({
      'GET status': STATUS,
      'GET containers': { data: [container('cntr_a')], now: NOW },
      'GET containers/cntr_a/files': { data: [] },
      'POST containers/cntr_a/files': (init: { body?: unknown }) => {
        bodies.push(init.body);
        return file('f1', 'a.csv');
      }
    });
    await model.uploadFile('a.csv', 'cntr_a');
    await model.uploadFile('a.csv', 'cntr_a', true);
    await model.uploadFile('nb/data/a.csv', 'cntr_a', false, 'nb');
    expect(bodies).toEqual([
      { path: 'a.csv', overwrite: false, folder: '' },
      { path: 'a.csv', overwrite: true, folder: '' },
      { path: 'nb/data/a.csv', overwrite: false, folder: 'nb' }
    ]);
  });

  it("knows the active notebook's container, and the kernels using each", async () => {
    serve({
      'GET status': STATUS,
      'GET containers': {
        data: [container('cntr_a'), container('cntr_b')],
        now: NOW,
        in_use: { k1: 'cntr_a', k2: 'cntr_b', k3: 'cntr_b' }
      }
    });
    await model.refresh();
    expect(model.activeContainerId).toBeNull();
    model.activeKernel = 'k2';
    expect(model.activeContainerId).toBe('cntr_b');
    expect(model.kernelsUsing('cntr_b')).toEqual(['k2', 'k3']);
    expect(model.kernelsUsing('cntr_c')).toEqual([]);
  });

  it('says the server is stopped, and starts it only when asked', async () => {
    let stopped = true;
    serve({
      'GET status': () => ({ ...STATUS, stopped }),
      'GET containers': () =>
        stopped
          ? { data: [], now: NOW, in_use: {}, stopped: true }
          : {
              data: [container('cntr_a', { state_lost: 'the server restarted since its last run' })],
              now: NOW
            },
      'POST server': () => {
        stopped = false;
        return STATUS;
      }
    });
    await model.refresh();
    expect(model.serverStopped).toBe(true);
    expect(model.error).toBeNull();
    expect(requested()).not.toContain('POST server');

    await model.startServer();
    expect(requested()).toContain('POST server');
    expect(model.serverStopped).toBe(false);
    expect(model.backendStatus).toEqual({ ...STATUS, stopped: false });
    expect(model.containers[0].state_lost).toBe('the server restarted since its last run');
  });
});
