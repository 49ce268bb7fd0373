import { deleteIcon, ToolbarButtonComponent } from '@jupyterlab/ui-components';
import * as React from 'react';

import { formatMemory } from '../format';
import { rowState } from '../labels';
import { IContainer } from '../tokens';

export interface IContainerListProps {
  containers: readonly IContainer[];
  selectedId: string | null;
  busy: ReadonlySet<string>;
  loading: boolean;
  /** The last refresh failed: the list may be stale, and "no containers" may not be true. */
  failed: boolean;
  secondsLeft: (container: IContainer) => number | null;
  /** Which notebook uses the container: the active one, another one, or none. */
  usedBy?: (id: string) => 'active' | 'other' | null;
  onSelect: (id: string) => void;
  onDelete: (id: string) => void;
}

/** The containers: status, name, memory and time to expiry; a click selects one. */
export function ContainerList(props: IContainerListProps): JSX.Element {
  if (props.containers.length === 0) {
    if (props.failed) {
      return <></>;
    }
    return (
      <div className="jp-cellbox-empty">
        {props.loading ? 'Loading…' : 'No containers. Create one with +.'}
      </div>
    );
  }
  return (
    <ul className="jp-cellbox-list" role="listbox" aria-label="Containers">
      {props.containers.map(container => (
        <ContainerRow
          key={container.id}
          container={container}
          selected={container.id === props.selectedId}
          busy={props.busy.has(container.id)}
          secondsLeft={props.secondsLeft(container)}
          usedBy={props.usedBy?.(container.id) ?? null}
          onSelect={props.onSelect}
          onDelete={props.onDelete}
        />
      ))}
    </ul>
  );
}

interface IContainerRowProps {
  container: IContainer;
  selected: boolean;
  busy: boolean;
  secondsLeft: number | null;
  usedBy: 'active' | 'other' | null;
  onSelect: (id: string) => void;
  onDelete: (id: string) => void;
}

function ContainerRow(props: IContainerRowProps): JSX.Element {
  const { container, secondsLeft } = props;
  const state = rowState(container, secondsLeft);
  const classes = ['jp-cellbox-item', 'jp-cellbox-container'];
  if (props.selected) {
    classes.push('jp-mod-selected');
  }
  if (props.busy) {
    classes.push('jp-mod-busy');
  }
  if (props.usedBy === 'active') {
    classes.push('jp-mod-current');
  }
  return (
    <li
      className={classes.join(' ')}
      role="option"
      aria-selected={props.selected}
      data-id={container.id}
      title={container.id}
      tabIndex={0}
      onClick={() => props.onSelect(container.id)}
      onKeyDown={event => {
        if (event.key === 'Enter' || event.key === ' ') {
          event.preventDefault();
          props.onSelect(container.id);
        } else if (event.key === 'Delete') {
          props.onDelete(container.id);
        }
      }}
    >
      <span className={`jp-cellbox-status jp-cellbox-status-${state.dot}`} title={state.title} />
      <div className="jp-cellbox-item-main">
        <div className="jp-cellbox-item-name jp-cellbox-container-name">
          <span className="jp-cellbox-container-label">{container.name || container.id}</span>
          {props.usedBy && (
            <span
              className={`jp-cellbox-inuse jp-cellbox-inuse-${props.usedBy}`}
              title={
                props.usedBy === 'active'
                  ? 'The active notebook runs its cells here'
                  : 'Another open notebook uses it'
              }
            >
              {props.usedBy === 'active' ? 'this notebook' : 'in use'}
            </span>
          )}
        </div>
        <div className="jp-cellbox-item-meta">
          <span className="jp-cellbox-chip" title="Memory">
            {formatMemory(container.memory_limit)}
          </span>
          <span className={`jp-cellbox-expiry${state.warn ? ' jp-mod-warn' : ''}`} title={state.title}>
            {state.text}
          </span>
        </div>
      </div>
      <ToolbarButtonComponent
        className="jp-cellbox-item-action"
        icon={deleteIcon}
        tooltip={`Delete ${container.name || container.id}`}
        enabled={!props.busy}
        onClick={event => {
          event?.stopPropagation();
          props.onDelete(container.id);
        }}
      />
    </li>
  );
}
