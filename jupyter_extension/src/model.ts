import { IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { isLive, secondsLeft as secondsLeftAt } from './format';
import { apiPath, requestAPI } from './handler';
import {
  IContainer,
  IContainerFile,
  IContainerListing,
  IDownloaded,
  IFileListing,
  INewContainer,
  IBackendStatus,
  IUploaded
} from './tokens';

/** How often the list is refreshed while the panel is visible, and how far the interval backs off on errors. */
const REFRESH_INTERVAL = 10 * 1000;
const MAX_BACKOFF = 5 * 60 * 1000;

/**
 * The sidebar's state: the containers, the selected one and its files, the backend's status and the last error.
 * Refreshes itself with a poll that backs off while the server fails and pauses while the page is hidden;
 * `changed` fires on every change and `ticked` once a second, for the expiry countdowns.
 *
 * Only the containers *list* is polled: listing is not an operation on any container. Every operation on one
 * (retrieving it, listing its files, ...) refreshes its activity on the real services and the local server
 * alike, so polling the selected container's files would keep it alive for as long as the panel is open. Its
 * files are fetched when the user selects it or acts: the refresh button, an upload, a delete.
 */
export class ContainersModel implements IDisposable {
  constructor(options: ContainersModel.IOptions = {}) {
    this._call = options.call ?? requestAPI;
    this._poll = new Poll({
      auto: false,
      factory: () => this._load(),
      frequency: {
        interval: options.interval ?? REFRESH_INTERVAL,
        backoff: true,
        max: MAX_BACKOFF
      },
      name: 'cellbox:containers',
      standby: 'when-hidden'
    });
    this._clock = new Poll({
      auto: false,
      factory: async () => this._ticked.emit(),
      frequency: { interval: 1000, backoff: false },
      name: 'cellbox:clock',
      standby: 'when-hidden'
    });
  }

  /** Start polling (the panel calls this once it is attached). */
  start(): void {
    void this._poll.start();
    void this._clock.start();
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get ticked(): ISignal<this, void> {
    return this._ticked;
  }

  get containers(): readonly IContainer[] {
    return this._containers;
  }

  get files(): readonly IContainerFile[] {
    return this._files;
  }

  /** The kernel of the notebook the user is in (the shell's current widget), or null. */
  get activeKernel(): string | null {
    return this._activeKernel;
  }

  set activeKernel(id: string | null) {
    if (id !== this._activeKernel) {
      this._activeKernel = id;
      this._changed.emit();
    }
  }

  /** The container the active notebook's kernel uses, or null. */
  get activeContainerId(): string | null {
    return this._activeKernel ? (this._inUse[this._activeKernel] ?? null) : null;
  }

  /** The kernels (by id) whose notebooks use this container. */
  kernelsUsing(containerId: string): string[] {
    return Object.keys(this._inUse).filter(k => this._inUse[k] === containerId);
  }

  /** Whether the user stopped the local server (`cellbox stop`): the panel offers to start it, never does unasked. */
  get serverStopped(): boolean {
    return this._serverStopped;
  }

  /** Start the local server again (the user's Start), then list what it has. */
  async startServer(): Promise<void> {
    this._starting = true;
    this._changed.emit();
    try {
      this._backendStatus = await this._call<IBackendStatus>('server', { method: 'POST' });
      this._serverStopped = false;
    } finally {
      this._starting = false;
      this._changed.emit();
    }
    await this.refresh();
  }

  /** True while a Start is under way. */
  get starting(): boolean {
    return this._starting;
  }

  /** `active` when the active notebook uses this container, `other` when another running notebook does. */
  usedBy(containerId: string): 'active' | 'other' | null {
    const kernels = Object.keys(this._inUse).filter(k => this._inUse[k] === containerId);
    if (this._activeKernel && kernels.includes(this._activeKernel)) {
      return 'active';
    }
    return kernels.length ? 'other' : null;
  }

  /** Whether cellbox's own files are listed too (as `%container files` hides them, they are hidden by default). */
  get showPrivate(): boolean {
    return this._showPrivate;
  }

  set showPrivate(value: boolean) {
    if (value !== this._showPrivate) {
      this._showPrivate = value;
      this._changed.emit();
      void this._loadFiles().catch(error => this._fail(error));
    }
  }

  /** How many of cellbox's own files the listing left out. */
  get hiddenFiles(): number {
    return this._hiddenFiles;
  }

  get selected(): IContainer | null {
    return this._containers.find(c => c.id === this._selectedId) ?? null;
  }

  get backendStatus(): IBackendStatus | null {
    return this._backendStatus;
  }

  /** The last failure, as the server extension worded it; null once a refresh succeeds again. */
  get error(): string | null {
    return this._error;
  }

  /** True until the first answer (or failure) arrives. */
  get loading(): boolean {
    return this._loading;
  }

  /** Ids of the containers and files an operation is under way for. */
  get busy(): ReadonlySet<string> {
    return this._busy;
  }

  get autoRefresh(): boolean {
    return this._autoRefresh;
  }

  set autoRefresh(value: boolean) {
    if (value === this._autoRefresh) {
      return;
    }
    this._autoRefresh = value;
    if (value) {
      void this._poll.start();
    } else {
      void this._poll.stop();
    }
    this._changed.emit();
  }

  /** Seconds until `container` expires if left idle, counted on the server's clock; null when unknown. */
  secondsLeft(container: IContainer): number | null {
    return secondsLeftAt(container, Date.now() / 1000 + this._clockOffset);
  }

  /** Reload everything now, the backend's status and the selected container's files included (a user's
   * action: it counts as activity on that container, which the timer's refreshes never do). */
  async refresh(): Promise<void> {
    this._backendStatus = null;
    this._filesDue = true;
    await this._poll.refresh();
    await this._poll.tick;
  }

  select(id: string | null): void {
    if (id === this._selectedId) {
      return;
    }
    this._selectedId = id;
    this._files = [];
    this._hiddenFiles = 0;
    this._changed.emit();
    if (id && isLive(this.selected?.status ?? null)) {
      // a gone container has no files to list
      void this._loadFiles().catch(error => this._fail(error));
    }
  }

  async createContainer(options: INewContainer): Promise<IContainer> {
    const created = await this._call<IContainer>('containers', {
      method: 'POST',
      body: options
    });
    this._containers = [created, ...this._containers.filter(c => c.id !== created.id)];
    this.select(created.id);
    void this.refresh();
    return created;
  }

  async deleteContainer(id: string): Promise<void> {
    await this._during(id, () => this._call(apiPath('containers', id), { method: 'DELETE' }));
    this._containers = this._containers.filter(c => c.id !== id);
    if (this._selectedId === id) {
      this.select(null);
    }
    this._changed.emit();
  }

  /**
   * Upload workspace file `path` into container `containerId` (by default the selected one), where a push from a
   * notebook in workspace folder `folder` puts it (its path from there, or its name when it is elsewhere).
   */
  async uploadFile(path: string, containerId?: string, overwrite = false, folder = ''): Promise<IUploaded> {
    const id = containerId ?? this._selectedId;
    if (!id) {
      throw new Error('Select a container first.');
    }
    const uploaded = await this._during(id, () =>
      this._call<IUploaded>(apiPath('containers', id, 'files'), {
        method: 'POST',
        body: { path, overwrite, folder }
      })
    );
    if (id === this._selectedId) {
      await this._loadFiles();
    }
    return uploaded;
  }

  /** Save a file of the selected container into workspace folder `directory`. */
  async downloadFile(fileId: string, directory: string, overwrite = false): Promise<IDownloaded> {
    const id = this._requireSelected();
    return this._during(fileId, () =>
      this._call<IDownloaded>(apiPath('containers', id, 'files', fileId, 'download'), {
        method: 'POST',
        body: { directory, overwrite }
      })
    );
  }

  async deleteFile(fileId: string): Promise<void> {
    const id = this._requireSelected();
    await this._during(fileId, () =>
      this._call(apiPath('containers', id, 'files', fileId), { method: 'DELETE' })
    );
    this._files = this._files.filter(f => f.id !== fileId);
    this._changed.emit();
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    // Stopping clears the next tick's timer, which disposing a Poll alone leaves pending.
    void this._poll.stop();
    void this._clock.stop();
    this._poll.dispose();
    this._clock.dispose();
    Signal.clearData(this);
  }

  private _requireSelected(): string {
    if (!this._selectedId) {
      throw new Error('Select a container first.');
    }
    return this._selectedId;
  }

  private async _during<T>(id: string, work: () => Promise<T>): Promise<T> {
    this._busy.add(id);
    this._changed.emit();
    try {
      return await work();
    } finally {
      this._busy.delete(id);
      this._changed.emit();
    }
  }

  private async _load(): Promise<void> {
    try {
      if (!this._backendStatus) {
        // Which backend, shown even when it fails to answer.
        this._backendStatus = await this._call<IBackendStatus>('status');
      }
      const list = await this._call<IContainerListing>('containers');
      const filesDue = this._filesDue;
      this._filesDue = false;
      this._clockOffset = list.now - Date.now() / 1000;
      this._containers = list.data.filter(c => c.status !== 'deleted');
      this._inUse = list.in_use ?? {};
      this._serverStopped = list.stopped === true;
      if (this._selectedId && !this.selected) {
        this._selectedId = null;
        this._files = [];
      }
      // Not on the timer (see the class comment): only when `refresh()` asked for them.
      if (this._selectedId && filesDue) {
        await this._loadFiles(false);
      }
      this._error = null;
    } catch (error) {
      this._fail(error);
      throw error; // the poll backs off
    } finally {
      this._loading = false;
      this._changed.emit();
    }
  }

  private async _loadFiles(emit = true): Promise<void> {
    const id = this._selectedId;
    if (!id || !isLive(this.selected?.status ?? null)) {
      return;
    }
    const path = apiPath('containers', id, 'files') + (this._showPrivate ? '?all=1' : '');
    const list = await this._call<IFileListing>(path);
    if (id === this._selectedId) {
      this._files = list.data;
      this._hiddenFiles = list.hidden ?? 0;
      if (emit) {
        this._changed.emit();
      }
    }
  }

  private _fail(error: unknown): void {
    this._error = error instanceof Error ? error.message : String(error);
    this._changed.emit();
  }

  private _call: typeof requestAPI;
  private _poll: Poll;
  private _clock: Poll;
  private _changed = new Signal<this, void>(this);
  private _ticked = new Signal<this, void>(this);
  private _containers: IContainer[] = [];
  private _files: IContainerFile[] = [];
  private _selectedId: string | null = null;
  private _backendStatus: IBackendStatus | null = null;
  private _error: string | null = null;
  private _loading = true;
  private _busy = new Set<string>();
  private _autoRefresh = true;
  private _filesDue = false;
  private _inUse: Record<string, string> = {};
  private _activeKernel: string | null = null;
  private _showPrivate = false;
  private _serverStopped = false;
  private _starting = false;
  private _hiddenFiles = 0;
  private _clockOffset = 0;
  private _isDisposed = false;
}

export namespace ContainersModel {
  export interface IOptions {
    /** How the model calls the server extension (a seam for tests). */
    call?: typeof requestAPI;
    /** Milliseconds between refreshes. */
    interval?: number;
  }
}
