import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { API_NAMESPACE } from './tokens';

/** A failed call to the server extension, with its message and statuses. */
export class CellboxRequestError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly upstreamStatus: number | null = null
  ) {
    super(message);
    this.name = 'CellboxRequestError';
  }
}

/**
 * Call the cellbox server extension: `requestAPI<IContainerList>('containers')`.
 * The only place the frontend does HTTP; a body is sent as JSON.
 */
export async function requestAPI<T>(
  endPoint: string,
  init: { method?: string; body?: unknown } = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);
  const request: RequestInit = { method: init.method ?? 'GET' };
  if (init.body !== undefined) {
    request.body = JSON.stringify(init.body);
    request.headers = { 'Content-Type': 'application/json' };
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, request, settings);
  } catch (error) {
    throw new CellboxRequestError(`Jupyter server unreachable: ${error}`, 0);
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
    throw new CellboxRequestError(message, response.status, data?.upstream_status ?? null);
  }
  return data as T;
}

/** `containers/<id>/files/<id>` with each id escaped. */
export function apiPath(...parts: string[]): string {
  return parts.map(encodeURIComponent).join('/');
}
