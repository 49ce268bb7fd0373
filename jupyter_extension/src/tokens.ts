/**
 * What the cellbox sidebar shares between its parts: the JSON the server extension sends, the command ids and the
 * sidebar's id. No behaviour here. The names follow the glossary in docs/ARCHITECTURE.md.
 */

/** The sidebar widget's id (also the layout restorer's key). */
export const SIDEBAR_ID = 'cellbox-sidebar';

/** The server extension's routes live under `<base_url>/cellbox/api/`. */
export const API_NAMESPACE = 'cellbox/api';

/** Memory sizes a container can have, as the API spells them (Python: `cellbox.api.MEMORY_LIMITS`). */
export const MEMORY_LIMITS = ['1g', '4g', '16g', '64g'] as const;
export type MemoryLimit = (typeof MEMORY_LIMITS)[number];

/**
 * Statuses of a container that is up and counting down to expiry; a server that sends no status means one
 * (Python: `cellbox.api.lookup.LIVE`). Everything else (`expired`, `deleted`) is gone.
 */
export const LIVE_STATUSES: readonly (string | null)[] = [null, 'running', 'active'];

export namespace CommandIDs {
  export const open = 'cellbox:open';
  export const refresh = 'cellbox:refresh';
  export const newContainer = 'cellbox:new-container';
  export const deleteContainer = 'cellbox:delete-container';
  export const uploadToContainer = 'cellbox:upload-to-container';
  export const uploadWorkspaceFile = 'cellbox:upload-workspace-file';
  export const downloadFile = 'cellbox:download-file';
  export const deleteFile = 'cellbox:delete-file';
  export const toggleAutoRefresh = 'cellbox:toggle-auto-refresh';
  export const startServer = 'cellbox:start-server';
}

/**
 * A container: the fields of the API's container object that the sidebar shows, plus the expiry the server
 * computed (Python: `cellbox.api.Container`).
 */
export interface IContainer {
  id: string;
  name: string | null;
  status: string | null;
  memory_limit: string | null;
  /** Unix time at which the container expires if left idle. */
  expires_at: number | null;
  /** Why its Python state is gone before its next run (the local server says so; its files are kept). */
  state_lost?: string | null;
}

/** A file inside a container, as the API lists it (Python: `cellbox.api.ContainerFile`). */
export interface IContainerFile {
  id: string;
  name: string;
  path: string | null;
  bytes: number | null;
  /** `user` (uploaded) or `assistant` (made by code in the container): the API's words, shown as `sourceLabel` says. */
  source: string | null;
  /** cellbox's own file (its runtime, a run's request and result record, pushed values), hidden unless asked for. */
  private?: boolean;
}

/** An upload's answer: the file entry, and where it was asked to land (a service may store it elsewhere). */
export interface IUploaded extends IContainerFile {
  wanted: string;
}

/** The `containers` route's answer. */
export interface IContainerListing {
  data: IContainer[];
  /** The server's clock when it listed them: the countdowns run from it, whatever the browser's clock says. */
  now: number;
  /** Which container each running kernel uses, by kernel id (what the magics recorded). */
  in_use?: Record<string, string>;
  /** The local server was stopped by the user (`cellbox stop`): nothing is listed, and nothing starts it unasked. */
  stopped?: boolean;
}

/** The `containers/<id>/files` route's answer. */
export interface IFileListing {
  data: IContainerFile[];
  /** How many of cellbox's own files were left out. */
  hidden?: number;
}

/** Which backend the server extension talks to: the `status` route's answer. Never holds a secret. */
export interface IBackendStatus {
  backend: string;
  base_url: string | null;
  /** The local server was stopped by the user (`cellbox stop`). */
  stopped?: boolean;
}

export interface INewContainer {
  name: string;
  memory_limit?: MemoryLimit;
}

export interface IDownloaded {
  path: string;
  bytes: number;
}
