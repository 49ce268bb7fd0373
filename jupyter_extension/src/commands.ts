import { JupyterFrontEnd } from '@jupyterlab/application';
import { PathExt } from '@jupyterlab/coreutils';
import { Dialog, InputDialog, Notification, showDialog } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { FileDialog, IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { fileUploadIcon, refreshIcon } from '@jupyterlab/ui-components';

import { isLive } from './format';
import { CellboxCallError } from './handler';
import { ContainersModel } from './model';
import { ContainersPanel } from './panel';
import { CommandIDs, IContainer, INewContainer, MEMORY_LIMITS, MemoryLimit } from './tokens';

export interface ICommandContext {
  app: JupyterFrontEnd;
  model: ContainersModel;
  panel: ContainersPanel;
  fileBrowser: IDefaultFileBrowser | null;
  docManager: IDocumentManager | null;
}

function label(container: IContainer): string {
  return container.name || container.id;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Run `work`, reporting a failure as a notification; resolves to undefined when it failed. */
async function reported<T>(what: string, work: () => Promise<T>): Promise<T | undefined> {
  try {
    return await work();
  } catch (error) {
    Notification.error(`${what}: ${message(error)}`, { autoClose: 8000 });
    return undefined;
  }
}

/** Where an upload goes: a container, and the workspace folder its paths are taken from. */
interface IUploadTarget {
  container: IContainer;
  /** The folder of the notebook using the container ('' for the workspace root): a push from there keeps paths. */
  folder: string;
}

/** The workspace folder of a running notebook whose kernel uses `containerId` (the active one first), or ''. */
function notebookFolder(app: JupyterFrontEnd, model: ContainersModel, containerId: string): string {
  const kernels = model.kernelsUsing(containerId);
  const active = model.activeKernel;
  const ordered =
    active && kernels.includes(active) ? [active, ...kernels.filter(k => k !== active)] : kernels;
  const sessions = [...app.serviceManager.sessions.running()];
  for (const kernel of ordered) {
    const session = sessions.find(s => s.kernel?.id === kernel);
    if (session?.path) {
      return PathExt.dirname(session.path);
    }
  }
  return '';
}

/**
 * The container to upload into: the active notebook's (else the selected one, else the first running); with more
 * than one running, the user picks, that one chosen already.
 */
async function chooseTarget(app: JupyterFrontEnd, model: ContainersModel): Promise<IUploadTarget | null> {
  const running = model.containers.filter(c => isLive(c.status));
  if (running.length === 0) {
    Notification.warning('Create a container first (the + in the Containers panel).', { autoClose: 5000 });
    return null;
  }
  const preferred = model.activeContainerId ?? model.selected?.id ?? null;
  let chosen = running.find(c => c.id === preferred) ?? running[0];
  if (running.length > 1) {
    const names = running.map(c => {
      const used = model.usedBy(c.id);
      const mark = used === 'active' ? ' (this notebook)' : used === 'other' ? ' (another notebook)' : '';
      return `${label(c)}${mark} · ${c.id}`;
    });
    const result = await InputDialog.getItem({
      title: 'Upload to container',
      label: 'Container',
      items: names,
      current: running.indexOf(chosen)
    });
    if (!result.button.accept || result.value === null) {
      return null;
    }
    chosen = running[names.indexOf(result.value)] ?? chosen;
  }
  return { container: chosen, folder: notebookFolder(app, model, chosen.id) };
}

/** Every action of the sidebar, as commands: the panel's buttons, the palette and the context menu use them. */
export function addCommands(context: ICommandContext): void {
  const { app, model, panel, fileBrowser, docManager } = context;
  const { commands, shell } = app;

  commands.addCommand(CommandIDs.open, {
    label: 'Show Containers',
    caption: 'Open the cellbox Containers sidebar',
    execute: () => shell.activateById(panel.id)
  });

  commands.addCommand(CommandIDs.refresh, {
    label: 'Refresh Containers',
    icon: refreshIcon,
    execute: () => model.refresh().catch(() => undefined)
  });

  commands.addCommand(CommandIDs.startServer, {
    label: 'Start the Local Server',
    caption: 'Start the cellbox local server (stopped with `cellbox stop`)',
    isEnabled: () => model.serverStopped && !model.starting,
    execute: () => reported('Could not start the local server', () => model.startServer())
  });

  commands.addCommand(CommandIDs.toggleAutoRefresh, {
    label: 'Auto-refresh Containers',
    isToggled: () => model.autoRefresh,
    execute: () => {
      model.autoRefresh = !model.autoRefresh;
    }
  });

  commands.addCommand(CommandIDs.newContainer, {
    label: 'New Container…',
    caption: 'Create a container (name, memory)',
    execute: async args => {
      const name = typeof args.name === 'string' ? args.name : '';
      if (!name) {
        shell.activateById(panel.id);
        panel.showNewForm();
        return undefined;
      }
      const memory = MEMORY_LIMITS.includes(args.memory_limit as MemoryLimit)
        ? (args.memory_limit as MemoryLimit)
        : undefined;
      const options: INewContainer = { name, memory_limit: memory };
      const created = await reported(`Could not create ${name}`, () => model.createContainer(options));
      if (created) {
        Notification.success(`Created container ${label(created)}.`, { autoClose: 3000 });
      }
      return created;
    }
  });

  commands.addCommand(CommandIDs.deleteContainer, {
    label: 'Delete Container…',
    execute: async args => {
      const container = model.containers.find(c => c.id === args.id) ?? model.selected;
      if (!container) {
        return;
      }
      const answer = await showDialog({
        title: 'Delete container',
        body: `Delete "${label(container)}" and every file in it? This can't be undone.`,
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
      });
      if (!answer.button.accept) {
        return;
      }
      await reported(`Could not delete ${label(container)}`, () => model.deleteContainer(container.id));
    }
  });

  commands.addCommand(CommandIDs.deleteFile, {
    label: 'Delete File from Container…',
    execute: async args => {
      const file = model.files.find(f => f.id === args.id);
      if (!file) {
        return;
      }
      const answer = await showDialog({
        title: 'Delete file',
        body: `Delete "${file.name}" from ${model.selected ? label(model.selected) : 'the container'}?`,
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
      });
      if (answer.button.accept) {
        await reported(`Could not delete ${file.name}`, () => model.deleteFile(file.id));
      }
    }
  });

  commands.addCommand(CommandIDs.downloadFile, {
    label: 'Download into the Workspace',
    execute: async args => {
      const file = model.files.find(f => f.id === args.id);
      if (!file) {
        return;
      }
      const directory = fileBrowser?.model.path ?? '';
      const save = async (overwrite: boolean) => {
        try {
          return await model.downloadFile(file.id, directory, overwrite);
        } catch (error) {
          if (!overwrite && error instanceof CellboxCallError && error.status === 409) {
            const answer = await showDialog({
              title: 'Replace file?',
              body: `${error.message}. Replace it with the container's ${file.name}?`,
              buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Replace' })]
            });
            return answer.button.accept ? model.downloadFile(file.id, directory, true) : undefined;
          }
          throw error;
        }
      };
      const saved = await reported(`Could not download ${file.name}`, () => save(false));
      if (saved) {
        Notification.success(`Saved ${saved.path}.`, { autoClose: 3000 });
        await fileBrowser?.model.refresh();
      }
    }
  });

  const upload = async (paths: string[], target: IUploadTarget) => {
    const { container, folder } = target;
    for (const path of paths) {
      const send = async () => {
        try {
          return await model.uploadFile(path, container.id, false, folder);
        } catch (error) {
          if (error instanceof CellboxCallError && error.status === 409) {
            const answer = await showDialog({
              title: 'Replace file?',
              body: `${error.message}. Replace it with the workspace's ${path}?`,
              buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Replace' })]
            });
            return answer.button.accept ? model.uploadFile(path, container.id, true, folder) : undefined;
          }
          throw error;
        }
      };
      const done = await reported(`Could not upload ${path}`, send);
      if (done) {
        // Where it is: a service that names uploads itself (OpenAI) may have stored it elsewhere than asked.
        const where =
          done.path && done.path !== done.wanted
            ? `${done.path} (the service's name for ${done.wanted})`
            : done.wanted;
        Notification.success(`Uploaded ${path} to ${label(container)} at ${where}.`, { autoClose: 5000 });
      }
    }
  };

  commands.addCommand(CommandIDs.uploadToContainer, {
    label: 'Upload to container',
    caption: 'Upload the selected files into a cellbox container',
    icon: fileUploadIcon,
    isVisible: () =>
      !!fileBrowser && [...fileBrowser.selectedItems()].some(item => item.type !== 'directory'),
    execute: async () => {
      const paths = fileBrowser
        ? [...fileBrowser.selectedItems()].filter(item => item.type !== 'directory').map(item => item.path)
        : [];
      const target = paths.length ? await chooseTarget(app, model) : null;
      if (target) {
        await upload(paths, target);
      }
    }
  });

  commands.addCommand(CommandIDs.uploadWorkspaceFile, {
    label: 'Upload a Workspace File to the Container…',
    icon: fileUploadIcon,
    isEnabled: () => !!docManager,
    execute: async () => {
      const target = await chooseTarget(app, model);
      if (!target || !docManager) {
        return;
      }
      const picked = await FileDialog.getOpenFiles({
        manager: docManager,
        title: `Upload to ${label(target.container)}`,
        defaultPath: target.folder || fileBrowser?.model.path
      });
      const paths = (picked.value ?? []).filter(item => item.type !== 'directory').map(item => item.path);
      if (picked.button.accept && paths.length) {
        await upload(paths, target);
      }
    }
  });
}
