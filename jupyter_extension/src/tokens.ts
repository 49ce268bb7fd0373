/**
 * What the cellbox sidebar shares between its parts: the records the server extension sends, the command ids
 * and the sidebar's id. No behaviour here.
 */

/** The sidebar widget's id (also the layout restorer's key). */
export const SIDEBAR_ID = 'cellbox-sidebar';

/** The server extension's routes live under `<base_url>/cellbox/api/`. */
export const API_NAMESPACE = 'cellbox/api';

/** Memory sizes a container can have. */
export const MEMORY_LIMITS = ['1g', '4g', '16g', '64g'] as const;
export type MemoryLimit = (typeof MEMORY_LIMITS)[number];

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
}

/** A container, as the Containers API describes it, plus the expiry the server computed. */
export interface IContainer {
  id: string;
  name: string | null;
  status: string | null;
  memory_limit: string | null;
  created_at: number | null;
  last_active_at: number | null;
  expires_after?: { anchor: string; minutes: number | null } | null;
  /** Unix time at which the container expires if left idle. */
  expires_at: number | null;
  seconds_left: number | null;
}

/** A file inside a container. */
export interface IContainerFile {
  id: string;
  name: string;
  path: string | null;
  bytes: number | null;
  /** `user` (uploaded) or `assistant` (made by code in the container). */
  source: string | null;
  created_at: number | null;
}

export interface IContainerList {
  data: IContainer[];
  /** The server's clock when it listed them: the countdowns run from it, whatever the browser's clock says. */
  now: number;
}

export interface IFileList {
  data: IContainerFile[];
}

/** Which backend the server extension talks to. Never holds a secret. */
export interface IStatus {
  version: string;
  backend: string;
  base_url: string | null;
  auth: string;
  api_key: string;
  project: string | null;
  autostart: boolean;
  workspace: string;
}

export interface INewContainer {
  name: string;
  memory_limit?: MemoryLimit;
  expires_after_minutes?: number;
}

export interface IDownloaded {
  path: string;
  bytes: number;
}
