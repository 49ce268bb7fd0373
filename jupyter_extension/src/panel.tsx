import { CommandRegistry } from '@lumino/commands';
import {
  addIcon,
  fileUploadIcon,
  ReactWidget,
  refreshIcon,
  ToolbarButtonComponent,
  UseSignal
} from '@jupyterlab/ui-components';
import * as React from 'react';

import { ContainerList } from './components/ContainerList';
import { isLive } from './format';
import { FileList } from './components/FileList';
import { NewContainerForm } from './components/NewContainerForm';
import { cellboxIcon } from './icon';
import { goneLine } from './labels';
import { ContainersModel } from './model';
import { CommandIDs, INewContainer, SIDEBAR_ID } from './tokens';

/**
 * The left-sidebar panel. It renders the model and hands every action to a command, so the palette, the
 * context menu and the panel behave the same.
 */
export class ContainersPanel extends ReactWidget {
  constructor(
    readonly model: ContainersModel,
    private readonly _commands: CommandRegistry
  ) {
    super();
    this.id = SIDEBAR_ID;
    this.title.icon = cellboxIcon;
    this.title.caption = 'Containers';
    this.title.label = '';
    this.addClass('jp-cellbox-panel');
  }

  /** Show the new-container form and focus it. */
  showNewForm(): void {
    this._formOpen = true;
    this.update();
  }

  protected onAfterAttach(msg: any): void {
    super.onAfterAttach(msg);
    this.model.start();
  }

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => <UseSignal signal={this.model.ticked}>{() => this._renderPanel()}</UseSignal>}
      </UseSignal>
    );
  }

  private _renderPanel(): JSX.Element {
    const model = this.model;
    const selected = model.selected;
    const backend = model.backendStatus;
    const execute = (id: string, args: Record<string, any> = {}) => void this._commands.execute(id, args);
    return (
      <div className="jp-cellbox-body">
        <header className="jp-cellbox-header">
          <h2 className="jp-cellbox-title">Containers</h2>
          <div className="jp-cellbox-toolbar">
            <ToolbarButtonComponent
              icon={addIcon}
              tooltip="New container"
              dataset={{ action: 'new' }}
              onClick={() => this.showNewForm()}
            />
            <ToolbarButtonComponent
              icon={refreshIcon}
              tooltip="Refresh"
              dataset={{ action: 'refresh' }}
              onClick={() => execute(CommandIDs.refresh)}
            />
          </div>
        </header>
        {this._formOpen && (
          <NewContainerForm
            onCreate={(options: INewContainer) =>
              this._commands.execute(CommandIDs.newContainer, { ...options }).then(created => {
                if (created) {
                  this._formOpen = false;
                  this.update();
                }
              })
            }
            onCancel={() => {
              this._formOpen = false;
              this.update();
            }}
            taken={name => model.containers.some(c => c.name === name && isLive(c.status))}
          />
        )}
        {model.error && (
          <div className="jp-cellbox-error" role="alert">
            {model.error}
          </div>
        )}
        {model.serverStopped && (
          <div className="jp-cellbox-stopped" role="status">
            <span>The local server is stopped (cellbox stop): nothing starts it again until you do.</span>
            <button
              type="button"
              className="jp-mod-styled jp-mod-accept"
              data-action="start-server"
              disabled={model.starting}
              onClick={() => execute(CommandIDs.startServer)}
            >
              {model.starting ? 'Starting…' : 'Start'}
            </button>
          </div>
        )}
        <section className="jp-cellbox-section jp-cellbox-containers">
          <ContainerList
            containers={model.containers}
            selectedId={selected?.id ?? null}
            busy={model.busy}
            loading={model.loading}
            failed={model.error !== null || model.serverStopped}
            secondsLeft={container => model.secondsLeft(container)}
            usedBy={id => model.usedBy(id)}
            onSelect={id => model.select(id)}
            onDelete={id => execute(CommandIDs.deleteContainer, { id })}
          />
        </section>
        {selected && (
          <section className="jp-cellbox-section jp-cellbox-files">
            <header className="jp-cellbox-header jp-cellbox-subheader">
              <h3 className="jp-cellbox-title" title={selected.id}>
                Files · {selected.name || selected.id}
              </h3>
              <div className="jp-cellbox-toolbar">
                <ToolbarButtonComponent
                  icon={fileUploadIcon}
                  tooltip="Upload a workspace file"
                  dataset={{ action: 'upload' }}
                  onClick={() => execute(CommandIDs.uploadWorkspaceFile)}
                />
              </div>
            </header>
            {goneLine(selected.status) ? (
              <div className="jp-cellbox-empty jp-cellbox-gone">{goneLine(selected.status)}</div>
            ) : (
              <>
                <FileList
                  files={model.files}
                  busy={model.busy}
                  onDownload={id => execute(CommandIDs.downloadFile, { id })}
                  onDelete={id => execute(CommandIDs.deleteFile, { id })}
                />
                <label
                  className="jp-cellbox-private"
                  title="cellbox's runtime, run records and pushed values"
                >
                  <input
                    type="checkbox"
                    checked={model.showPrivate}
                    onChange={() => (model.showPrivate = !model.showPrivate)}
                  />
                  Show cellbox's own files
                  {!model.showPrivate && model.hiddenFiles > 0 ? ` (${model.hiddenFiles} hidden)` : ''}
                </label>
              </>
            )}
          </section>
        )}
        <footer className="jp-cellbox-footer">
          <label className="jp-cellbox-autorefresh" title="Refresh every 10 seconds while visible">
            <input
              type="checkbox"
              checked={model.autoRefresh}
              onChange={() => execute(CommandIDs.toggleAutoRefresh)}
            />
            Auto-refresh
          </label>
          {backend && (
            <span className="jp-cellbox-backend" title={backend.base_url ?? 'no backend configured'}>
              {backend.backend}
              {backend.base_url ? ` · ${backend.base_url.replace(/^https?:\/\//, '')}` : ''}
            </span>
          )}
        </footer>
      </div>
    );
  }

  private _formOpen = false;
}
