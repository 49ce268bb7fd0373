/**
 * A notebook stays unmodified while its own kernel writes its metadata, against a stand-in for JupyterLab's
 * document context that writes as JupyterLab does: the metadata, then the dirty flag, in callbacks on the
 * kernel's info and spec attached when the kernel changes. The browser test (tests/jupyter/
 * test_browser_notebooks.py) checks the same in a real JupyterLab.
 */
import { IChangedArgs } from '@jupyterlab/coreutils';
import { Signal } from '@lumino/signaling';

import { INotebookContext, IStartingKernel, keepUnmodifiedOnKernelStart, sameJSON } from '../cleanopen';

type KernelChange = IChangedArgs<IStartingKernel | null, IStartingKernel | null, 'kernel'>;
type Metadata = Record<string, unknown>;

const STORED: Metadata = {
  kernelspec: { display_name: 'Python 3 (ipykernel)', language: 'python', name: 'python3' },
  language_info: { name: 'python', version: '3.11.7' }
};

class Notebook implements INotebookContext {
  isReady = true;
  content = {
    cells: [{ cell_type: 'code', source: 'x = 1' }],
    metadata: { ...STORED } as Metadata,
    nbformat: 4
  };
  readonly stateChanged = new Signal<this, IChangedArgs<unknown>>(this);
  readonly kernelChanged = new Signal<this, KernelChange>(this);
  readonly sessionContext = this;
  readonly model = this;
  readonly sharedModel = { toJSON: () => JSON.parse(JSON.stringify(this.content)) };
  private _dirty = false;

  get dirty(): boolean {
    return this._dirty;
  }

  set dirty(value: boolean) {
    const old = this._dirty;
    this._dirty = value;
    if (old !== value) {
      this.stateChanged.emit({ name: 'dirty', oldValue: old, newValue: value });
    }
  }

  setMetadata(key: string, value: unknown): void {
    this.content.metadata[key] = value;
    this.dirty = true;
  }

  edit(): void {
    this.content.cells[0].source += '\nprint(x)';
    this.dirty = true;
  }

  /** JupyterLab's kernel handling (NotebookPanel's), connected first as the panel is created first. */
  writesWhatTheKernelSays(): void {
    this.kernelChanged.connect((_, { newValue: kernel }) => {
      void kernel?.info.then(info => this.setMetadata('language_info', (info as Metadata).language_info));
      void kernel?.spec.then(spec => this.setMetadata('kernelspec', spec));
    });
  }
}

class Kernel implements IStartingKernel {
  info: Promise<unknown>;
  spec: Promise<unknown>;
  answerInfo!: () => void;
  answerSpec!: () => void;

  constructor(readonly name = 'python3') {
    this.info = new Promise<unknown>(resolve => {
      this.answerInfo = () => resolve({ language_info: { name: 'python', version: '3.12.4' } });
    });
    this.spec = new Promise<unknown>(resolve => {
      this.answerSpec = () => resolve({ display_name: 'Python 3', language: 'python', name });
    });
  }

  answer(): void {
    this.answerInfo();
    this.answerSpec();
  }
}

const aTaskLater = (): Promise<void> => new Promise(resolve => setTimeout(resolve, 0));

describe('keepUnmodifiedOnKernelStart', () => {
  let notebook: Notebook;

  beforeEach(() => {
    notebook = new Notebook();
    notebook.writesWhatTheKernelSays();
    keepUnmodifiedOnKernelStart(notebook);
  });

  it("keeps a notebook unmodified when its kernel's info and spec differ from the file", async () => {
    const kernel = new Kernel();
    const marks: unknown[] = [];
    notebook.stateChanged.connect((_, args) => marks.push(args.newValue));
    notebook.kernelChanged.emit({ name: 'kernel', oldValue: null, newValue: kernel });
    kernel.answer();
    await aTaskLater();

    expect(notebook.dirty).toBe(false);
    expect(marks[marks.length - 1]).toBe(false); // every mark taken back as it came
    expect(notebook.content.metadata.language_info).toEqual({ name: 'python', version: '3.12.4' });
    expect((notebook.content.metadata.kernelspec as Metadata).display_name).toBe('Python 3');
  });

  it('keeps an edit made while the kernel starts', async () => {
    const kernel = new Kernel();
    notebook.kernelChanged.emit({ name: 'kernel', oldValue: null, newValue: kernel });
    kernel.answerInfo();
    await kernel.info;
    expect(notebook.dirty).toBe(false);
    notebook.edit();
    kernel.answerSpec();
    await aTaskLater();

    expect(notebook.dirty).toBe(true);
  });

  it('leaves a notebook modified before its kernel started modified', async () => {
    notebook.edit();
    const kernel = new Kernel();
    notebook.kernelChanged.emit({ name: 'kernel', oldValue: null, newValue: kernel });
    kernel.answer();
    await aTaskLater();

    expect(notebook.dirty).toBe(true);
  });

  it('marks the notebook modified when the kernel is another than the one it names', async () => {
    const kernel = new Kernel('julia-1.10');
    notebook.kernelChanged.emit({ name: 'kernel', oldValue: null, newValue: kernel });
    kernel.answer();
    await aTaskLater();

    expect(notebook.dirty).toBe(true);
  });

  it('stops watching once the kernel has written its metadata', async () => {
    const kernel = new Kernel();
    notebook.kernelChanged.emit({ name: 'kernel', oldValue: null, newValue: kernel });
    kernel.answer();
    await aTaskLater();
    await aTaskLater();
    notebook.setMetadata('language_info', { name: 'python', version: '3.13.0' });

    expect(notebook.dirty).toBe(true);
  });
});

describe('sameJSON', () => {
  it('compares values, not key order', () => {
    expect(sameJSON({ a: 1, b: [1, { c: null }] }, { b: [1, { c: null }], a: 1 })).toBe(true);
    expect(sameJSON({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(sameJSON([1, 2], [2, 1])).toBe(false);
    expect(sameJSON({ a: [] }, { a: {} })).toBe(false);
    expect(sameJSON('1', 1)).toBe(false);
  });
});
