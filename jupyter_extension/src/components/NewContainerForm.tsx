import { HTMLSelect } from '@jupyterlab/ui-components';
import * as React from 'react';

import { formatMemory } from '../format';
import { containerNameProblem } from '../names';
import { INewContainer, MEMORY_LIMITS, MemoryLimit } from '../tokens';

export interface INewContainerFormProps {
  onCreate: (options: INewContainer) => Promise<unknown>;
  onCancel: () => void;
  /** Whether a running container already has this name (a name means one running container). */
  taken?: (name: string) => boolean;
}

/** Name and memory of a new container. */
export function NewContainerForm(props: INewContainerFormProps): JSX.Element {
  const [name, setName] = React.useState('');
  const [memory, setMemory] = React.useState<MemoryLimit>('1g');
  const [pending, setPending] = React.useState(false);
  const duplicate = !!props.taken?.(name.trim());
  // Said once something is typed (an empty form is not a mistake yet), by the rule the server extension applies.
  const problem = name.trim() ? containerNameProblem(name.trim()) : null;
  const valid = name.trim().length > 0 && !problem && !duplicate;

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    if (!valid || pending) {
      return;
    }
    setPending(true);
    try {
      await props.onCreate({ name: name.trim(), memory_limit: memory });
    } finally {
      setPending(false);
    }
  };

  return (
    <form className="jp-cellbox-form" aria-label="New container" onSubmit={submit}>
      <label className="jp-cellbox-field">
        <span>Name</span>
        <input
          className="jp-mod-styled jp-cellbox-input"
          name="name"
          placeholder="analysis"
          autoFocus
          value={name}
          onChange={event => setName(event.target.value)}
          onKeyDown={event => event.key === 'Escape' && props.onCancel()}
        />
      </label>
      {problem && (
        <div className="jp-cellbox-error jp-cellbox-form-error" role="alert">
          {problem.charAt(0).toUpperCase() + problem.slice(1)}.
        </div>
      )}
      {duplicate && (
        <div className="jp-cellbox-error jp-cellbox-form-error" role="alert">
          A container named "{name.trim()}" is already running. Pick another name, or select it in the list.
        </div>
      )}
      <label className="jp-cellbox-field">
        <span>Memory</span>
        <HTMLSelect
          className="jp-cellbox-select"
          name="memory"
          value={memory}
          options={MEMORY_LIMITS.map(limit => ({ value: limit, label: formatMemory(limit) }))}
          onChange={event => setMemory(event.target.value as MemoryLimit)}
        />
      </label>
      <div className="jp-cellbox-form-buttons">
        <button type="button" className="jp-mod-styled jp-mod-reject" onClick={props.onCancel}>
          Cancel
        </button>
        <button type="submit" className="jp-mod-styled jp-mod-accept" disabled={!valid || pending}>
          {pending ? 'Creating…' : 'Create'}
        </button>
      </div>
    </form>
  );
}
