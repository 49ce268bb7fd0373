/**
 * Opening a notebook doesn't mark it modified.
 *
 * When a notebook's kernel starts, JupyterLab writes what the kernel says about itself into the notebook's
 * metadata (`language_info` from its kernel_info reply, `kernelspec` from its spec) and marks the document
 * modified whenever that differs from the file: a notebook saved with another Python (`language_info.version`),
 * or under another display name of the same kernel, opens modified, and closing it untouched asks to save it. No
 * file can avoid that on every machine: the Python version is the machine's.
 *
 * So while the kernel the notebook names starts, a notebook that was unmodified stays unmodified when those two
 * keys are all that changed. The new metadata stays in the model and is saved with the user's next save, as it
 * was; an edit meanwhile, or a kernel other than the one the notebook names, marks it modified as before.
 */
import { IChangedArgs } from '@jupyterlab/coreutils';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';
import { ISignal } from '@lumino/signaling';

/** The metadata JupyterLab writes from a starting kernel. */
const FROM_KERNEL = ['language_info', 'kernelspec'];

type JSONish = unknown;

/** What of a kernel connection is used here. */
export interface IStartingKernel {
  readonly name: string;
  readonly info: Promise<unknown>;
  readonly spec: Promise<unknown>;
}

/** What of a notebook's document context is used here (a `DocumentRegistry.IContext` has it all). */
export interface INotebookContext {
  readonly isReady: boolean;
  readonly sessionContext: {
    readonly kernelChanged: ISignal<
      unknown,
      IChangedArgs<IStartingKernel | null, IStartingKernel | null, 'kernel'>
    >;
  };
  readonly model: {
    dirty: boolean;
    readonly stateChanged: ISignal<unknown, IChangedArgs<unknown>>;
    readonly sharedModel: { toJSON(): JSONish };
  };
}

/** Keeps `context`'s notebook unmodified while its own kernel writes its metadata; disposed with the widget. */
export function keepUnmodifiedOnKernelStart(context: INotebookContext): IDisposable {
  let stopWatching: (() => void) | null = null;

  const onKernelChanged = (
    _: unknown,
    change: IChangedArgs<IStartingKernel | null, IStartingKernel | null, 'kernel'>
  ): void => {
    stopWatching?.();
    const kernel = change.newValue;
    const model = context.model;
    // Only a kernel starting on a notebook as loaded: a modified one has nothing to keep.
    if (!kernel || !context.isReady || model.dirty) {
      return;
    }
    const loaded = model.sharedModel.toJSON() as { metadata?: { kernelspec?: { name?: string } } };
    if (loaded.metadata?.kernelspec?.name !== kernel.name) {
      return; // another kernel than the one the notebook names: the user's choice, worth saving
    }
    const asLoaded = withoutKernelMetadata(loaded);

    // The dirty flag is set right after each metadata write, in the same call: putting it back here, before
    // anything repaints, means the user never sees the notebook marked.
    const onStateChanged = (__: unknown, args: IChangedArgs<unknown>): void => {
      if (
        args.name === 'dirty' &&
        args.newValue === true &&
        sameJSON(withoutKernelMetadata(model.sharedModel.toJSON()), asLoaded)
      ) {
        model.dirty = false;
      }
    };
    model.stateChanged.connect(onStateChanged);
    const stop = (): void => {
      model.stateChanged.disconnect(onStateChanged);
      if (stopWatching === stop) {
        stopWatching = null;
      }
    };
    stopWatching = stop;
    // JupyterLab writes both keys in callbacks on these same promises, attached when the kernel changed (before
    // this handler ran, so they run first); a task later both are written, and the watch ends.
    void Promise.allSettled([kernel.info, kernel.spec])
      .then(() => new Promise(resolve => setTimeout(resolve, 0)))
      .then(stop);
  };

  context.sessionContext.kernelChanged.connect(onKernelChanged);
  return new DisposableDelegate(() => {
    context.sessionContext.kernelChanged.disconnect(onKernelChanged);
    stopWatching?.();
  });
}

function withoutKernelMetadata(notebook: JSONish): JSONish {
  const { metadata, ...rest } = notebook as { metadata?: Record<string, unknown> };
  const kept = Object.fromEntries(
    Object.entries(metadata ?? {}).filter(([key]) => !FROM_KERNEL.includes(key))
  );
  return { ...rest, metadata: kept };
}

/** Equality of JSON values, whatever their objects' key order. */
export function sameJSON(one: JSONish, two: JSONish): boolean {
  if (one === two) {
    return true;
  }
  if (typeof one !== 'object' || typeof two !== 'object' || one === null || two === null) {
    return false;
  }
  if (Array.isArray(one) || Array.isArray(two)) {
    return (
      Array.isArray(one) &&
      Array.isArray(two) &&
      one.length === two.length &&
      one.every((item, index) => sameJSON(item, two[index]))
    );
  }
  const left = one as Record<string, unknown>;
  const right = two as Record<string, unknown>;
  const keys = Object.keys(left).filter(key => left[key] !== undefined);
  return (
    keys.length === Object.keys(right).filter(key => right[key] !== undefined).length &&
    keys.every(key => sameJSON(left[key], right[key]))
  );
}
