/**
 * The cellbox JupyterLab extension: a left-sidebar panel (`cellbox-sidebar`, "Containers") over the cellbox
 * server extension's REST API, and an "Upload to container" entry in the file browser's context menu; notebooks
 * that open unmodified when their kernel starts (cleanopen.ts); and the "save to the notebook's folder" buttons
 * under an artifact gallery (savebuttons.ts).
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { INotebookContext, keepUnmodifiedOnKernelStart } from './cleanopen';
import { addCommands } from './commands';
import { ContainersModel } from './model';
import { ContainersPanel } from './panel';
import { saveButtonsFactory } from './savebuttons';
import { CommandIDs, SIDEBAR_ID } from './tokens';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'cellbox:sidebar',
  description: 'The cellbox Containers sidebar: containers and their files.',
  autoStart: true,
  optional: [ILayoutRestorer, IDefaultFileBrowser, IDocumentManager, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    fileBrowser: IDefaultFileBrowser | null,
    docManager: IDocumentManager | null,
    palette: ICommandPalette | null
  ) => {
    const model = new ContainersModel();
    const panel = new ContainersPanel(model, app.commands);
    addCommands({ app, model, panel, fileBrowser, docManager });

    // The container the active notebook uses is marked: its kernel id (as the magics record it) is followed
    // through the shell's current widget, whichever kind of document or console it is.
    const followKernel = () => {
      const widget = app.shell.currentWidget as any;
      const kernel = widget?.sessionContext?.session?.kernel?.id;
      if (typeof kernel === 'string') {
        model.activeKernel = kernel;
      }
    };
    app.shell.currentChanged?.connect(followKernel);
    model.ticked.connect(followKernel);

    app.shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, SIDEBAR_ID);

    app.contextMenu.addItem({
      command: CommandIDs.uploadToContainer,
      selector: '.jp-DirListing-item[data-isdir="false"]',
      rank: 12
    });
    for (const command of [
      CommandIDs.open,
      CommandIDs.newContainer,
      CommandIDs.refresh,
      CommandIDs.toggleAutoRefresh
    ]) {
      palette?.addItem({ command, category: 'Containers' });
    }
  }
};

const unmodifiedOnOpen: JupyterFrontEndPlugin<void> = {
  id: 'cellbox:unmodified-on-open',
  description: "Opening a notebook doesn't mark it modified: what its kernel writes on start is not an edit.",
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (_, context) => keepUnmodifiedOnKernelStart(context as unknown as INotebookContext)
    });
  }
};

const saveButtons: JupyterFrontEndPlugin<void> = {
  id: 'cellbox:save-buttons',
  description: "Buttons under an artifact gallery that save its files into the notebook's folder.",
  autoStart: true,
  requires: [IRenderMimeRegistry],
  optional: [IDocumentManager, IDefaultFileBrowser],
  activate: (
    app: JupyterFrontEnd,
    rendermime: IRenderMimeRegistry,
    docManager: IDocumentManager | null,
    fileBrowser: IDefaultFileBrowser | null
  ) => {
    // The folder of the document whose output holds the buttons (the workspace root for any other output).
    const folderOf = (node: HTMLElement): string => {
      for (const widget of app.shell.widgets('main')) {
        if (widget.node.contains(node)) {
          const path = docManager?.contextForWidget(widget)?.path;
          return path ? PathExt.dirname(path) : '';
        }
      }
      return '';
    };
    rendermime.addFactory(saveButtonsFactory(folderOf, () => void fileBrowser?.model.refresh()));
  }
};

export default [plugin, unmodifiedOnOpen, saveButtons];
