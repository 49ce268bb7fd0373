/**
 * What a "save to the notebook's folder" button under an artifact gallery does (savebuttons.ts draws them), for
 * `SAVE_MIME` outputs (`{"container_id", "files": [{"file_id", "path"}]}`, written by `cellbox.save_buttons`).
 *
 * A click asks the cellbox server extension to download the file from its container into the notebook's folder,
 * under its path in /mnt/data (`plots/a.png` into `plots/`). No kernel is involved, so a notebook reopened later
 * saves as well while its container lives; when it is gone, the button says so. A file already in the folder is
 * replaced only on a second click. Frontends without this extension show the output's `%container pull` line.
 */
import { PathExt } from '@jupyterlab/coreutils';

import { formatBytes } from './format';
import { CellboxCallError, apiPath, requestAPI } from './handler';
import { IDownloaded } from './tokens';

export const SAVE_MIME = 'application/vnd.cellbox.save+json';

export interface ISaveFile {
  file_id: string;
  path: string;
}

export interface ISaveData {
  container_id: string;
  files: ISaveFile[];
}

/** The output's data when it has the shape the kernel writes, else null (shown as the fallback says). */
export function saveData(value: unknown): ISaveData | null {
  const data = value as ISaveData;
  if (!data || typeof data.container_id !== 'string' || !Array.isArray(data.files)) {
    return null;
  }
  const files = data.files.filter(
    f => f && typeof f.file_id === 'string' && typeof f.path === 'string' && f.path
  );
  return files.length ? { container_id: data.container_id, files } : null;
}

/** Where a file lands under the notebook's folder: its relative path, kept to its name if it would climb. */
export function placeIn(folder: string, path: string): { directory: string; name: string } {
  const parts = path.split('/').filter(p => p && p !== '.');
  const name = parts.pop() ?? path;
  const below = parts.includes('..') ? [] : parts;
  return { directory: PathExt.join(folder, ...below), name };
}

/** One file's button: what a click does, and what the button and the line under the buttons then say. */
export class SaveAction {
  /** The next click replaces the file already in the folder. */
  replacing = false;
  /** The last click saved the file. */
  saved = false;

  constructor(
    readonly containerId: string,
    readonly file: ISaveFile,
    private readonly _folder: () => string
  ) {}

  get label(): string {
    return this.replacing ? `replace ${this.file.path}` : this.file.path;
  }

  /** Save the file; the line to show about it. */
  async click(): Promise<string> {
    const { directory, name } = placeIn(this._folder(), this.file.path);
    const endpoint = apiPath('containers', this.containerId, 'files', this.file.file_id, 'download');
    this.saved = false;
    try {
      const saved = await requestAPI<IDownloaded>(endpoint, {
        method: 'POST',
        body: { directory, name, overwrite: this.replacing, make_folders: true }
      });
      this.replacing = false;
      this.saved = true;
      const where = PathExt.dirname(saved.path) || 'the workspace root';
      return `saved ${name} (${formatBytes(saved.bytes)}) into ${where}`;
    } catch (error) {
      if (error instanceof CellboxCallError && error.status === 409 && !this.replacing) {
        if (/already exists/.test(error.message)) {
          this.replacing = true;
          return `${name} is already in this folder: click again to replace it`;
        }
      }
      if (error instanceof CellboxCallError && error.status === 404 && /container/i.test(error.message)) {
        return `could not save ${name}: its container is gone, and its files with it`;
      }
      const said = error instanceof Error ? error.message : String(error);
      return `could not save ${name}: ${said}`;
    }
  }
}
