import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { API_NAMESPACE } from './tokens';

/** A failed call to the server extension, with its message and statuses. */
export class CellboxCallError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly upstreamStatus: number | null = null
  ) {
    super(message);
    this.name = 'CellboxCallError';
  }
}

/**
 * Call the cellbox server extension: `requestAPI<IContainerListing>('containers')`.
 * The only place the frontend does HTTP; a body is sent as JSON.
 */
export async function requestAPI<T>(
  endPoint: string,
  options: { method?: string; body?: unknown } = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);
  const init: RequestInit = { method: options.method ?? 'GET' };
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new CellboxCallError(`Jupyter server unreachable: ${error}`, 0);
  }
  const text = await response.text();
  let data: any = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const message =
      (data && typeof data.message === 'string' && data.message) ||
      `${response.status} ${response.statusText}`;
    throw new CellboxCallError(message, response.status, data?.upstream_status ?? null);
  }
  return data as T;
}

/** `containers/<id>/files/<id>` with each id escaped. */
export function apiPath(...parts: string[]): string {
  return parts.map(encodeURIComponent).join('/');
}
