import { deleteIcon, downloadIcon, fileIcon, ToolbarButtonComponent } from '@jupyterlab/ui-components';
import * as React from 'react';

import { formatBytes } from '../format';
import { sourceLabel } from '../labels';
import { IContainerFile } from '../tokens';

export interface IFileListProps {
  files: readonly IContainerFile[];
  busy: ReadonlySet<string>;
  onDownload: (id: string) => void;
  onDelete: (id: string) => void;
}

/** The folder of a file under /mnt/data (`results/2024` for /mnt/data/results/2024/a.csv), '' at the top. */
export function folderOf(file: IContainerFile): string {
  const path = (file.path ?? '').replace(/^\/mnt\/data\/?/, '');
  const cut = path.lastIndexOf('/');
  return cut > 0 ? path.slice(0, cut) : '';
}

/** The selected container's files: name, size and where each came from (uploaded, or made by code there). */
export function FileList(props: IFileListProps): JSX.Element {
  if (props.files.length === 0) {
    return <div className="jp-cellbox-empty">No files. Upload one from the file browser.</div>;
  }
  return (
    <ul className="jp-cellbox-list" aria-label="Files">
      {props.files.map(file => {
        const busy = props.busy.has(file.id);
        return (
          <li
            key={file.id}
            className={`jp-cellbox-item jp-cellbox-file${busy ? ' jp-mod-busy' : ''}`}
            data-id={file.id}
            title={file.path ?? file.name}
          >
            <fileIcon.react className="jp-cellbox-file-icon" tag="span" />
            <div className="jp-cellbox-item-main">
              <div className="jp-cellbox-item-name">
                {folderOf(file) && <span className="jp-cellbox-file-folder">{folderOf(file)}/</span>}
                {file.name}
              </div>
              <div className="jp-cellbox-item-meta">
                <span className="jp-cellbox-size">{formatBytes(file.bytes)}</span>
                {file.source && (
                  <span
                    className={`jp-cellbox-chip jp-cellbox-source-${file.source}`}
                    title={sourceLabel(file.source).title}
                  >
                    {sourceLabel(file.source).text}
                  </span>
                )}
              </div>
            </div>
            <ToolbarButtonComponent
              className="jp-cellbox-item-action"
              icon={downloadIcon}
              tooltip={`Download ${file.name} into the file browser's folder`}
              enabled={!busy}
              onClick={() => props.onDownload(file.id)}
            />
            <ToolbarButtonComponent
              className="jp-cellbox-item-action"
              icon={deleteIcon}
              tooltip={`Delete ${file.name}`}
              enabled={!busy}
              onClick={() => props.onDelete(file.id)}
            />
          </li>
        );
      })}
    </ul>
  );
}
