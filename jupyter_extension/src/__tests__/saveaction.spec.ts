/** The gallery's save buttons against a mocked `requestAPI`: where a click saves, and what it then says. */
import { CellboxCallError, requestAPI } from '../handler';
import { SaveAction, placeIn, saveData } from '../saveaction';

jest.mock('../handler', () => ({
  ...jest.requireActual('../handler'),
  requestAPI: jest.fn()
}));

const mockRequest = requestAPI as jest.MockedFunction<typeof requestAPI>;

beforeEach(() => mockRequest.mockReset());

describe('saveData', () => {
  it('keeps the files of the shape the kernel writes and refuses anything else', () => {
    const data = {
      container_id: 'cntr_1',
      files: [{ file_id: 'cfile_1', path: 'plots/a.png' }, { file_id: 7, path: 'x' }, { path: 'y' }]
    };
    expect(saveData(data)).toEqual({
      container_id: 'cntr_1',
      files: [{ file_id: 'cfile_1', path: 'plots/a.png' }]
    });
    expect(saveData({ container_id: 'cntr_1', files: [] })).toBeNull();
    expect(saveData({ files: [{ file_id: 'a', path: 'b' }] })).toBeNull();
    expect(saveData('nonsense')).toBeNull();
    expect(saveData(null)).toBeNull();
  });
});

describe('placeIn', () => {
  it("puts a file under the notebook's folder by its path in /mnt/data", () => {
    expect(placeIn('work/nb', 'plots/2026/a.png')).toEqual({
      directory: 'work/nb/plots/2026',
      name: 'a.png'
    });
    expect(placeIn('work/nb', 'report.csv')).toEqual({ directory: 'work/nb', name: 'report.csv' });
    expect(placeIn('', 'report.csv')).toEqual({ directory: '', name: 'report.csv' });
    expect(placeIn('', './out/./r.csv')).toEqual({ directory: 'out', name: 'r.csv' });
  });

  it('keeps a path that would climb out to its name', () => {
    expect(placeIn('work/nb', '../../etc/passwd')).toEqual({ directory: 'work/nb', name: 'passwd' });
    expect(placeIn('work/nb', 'a/../../b.txt')).toEqual({ directory: 'work/nb', name: 'b.txt' });
  });
});

describe('SaveAction', () => {
  const file = { file_id: 'cfile_9', path: 'plots/wave.png' };

  it("asks the server extension to save into the notebook's folder, making its folders", async () => {
    mockRequest.mockResolvedValue({ path: 'work/plots/wave.png', bytes: 2048 });
    const action = new SaveAction('cntr_1', file, () => 'work');
    expect(action.label).toBe('plots/wave.png');
    expect(await action.click()).toBe('saved wave.png (2.0 kB) into work/plots');
    expect(action.saved).toBe(true);
    expect(mockRequest).toHaveBeenCalledWith('containers/cntr_1/files/cfile_9/download', {
      method: 'POST',
      body: { directory: 'work/plots', name: 'wave.png', overwrite: false, make_folders: true }
    });
  });

  it('replaces a file already there only on a second click', async () => {
    mockRequest.mockRejectedValueOnce(new CellboxCallError("'work/plots/wave.png' already exists", 409));
    const action = new SaveAction('cntr_1', file, () => 'work');
    expect(await action.click()).toBe('wave.png is already in this folder: click again to replace it');
    expect(action.saved).toBe(false);
    expect(action.label).toBe('replace plots/wave.png');
    mockRequest.mockResolvedValueOnce({ path: 'work/plots/wave.png', bytes: 10 });
    expect(await action.click()).toBe('saved wave.png (10 B) into work/plots');
    expect(mockRequest.mock.calls[1][1]).toMatchObject({ body: { overwrite: true } });
    expect(action.label).toBe('plots/wave.png');
  });

  it('says when the container is gone, and any other failure in the server words', async () => {
    mockRequest.mockRejectedValueOnce(new CellboxCallError("No container found with id 'cntr_1'.", 404));
    const action = new SaveAction('cntr_1', file, () => '');
    expect(await action.click()).toBe(
      'could not save wave.png: its container is gone, and its files with it'
    );
    mockRequest.mockRejectedValueOnce(new CellboxCallError('Jupyter server unreachable: offline', 0));
    expect(await action.click()).toBe('could not save wave.png: Jupyter server unreachable: offline');
    expect(action.saved).toBe(false);
    expect(action.label).toBe('plots/wave.png');
  });
});
