/**
 * The "save to the notebook's folder" buttons under an artifact gallery: the renderer of `SAVE_MIME` outputs, one
 * button per file (what a click does is saveaction.ts) and a line saying what the last click did.
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { SAVE_MIME, SaveAction, saveData } from './saveaction';

/** The buttons, one per file, and the line saying what the last click did. */
export class SaveButtons extends Widget implements IRenderMime.IRenderer {
  constructor(
    private readonly _options: IRenderMime.IRendererOptions,
    private readonly _folderOf: (node: HTMLElement) => string,
    private readonly _saved: () => void
  ) {
    super();
    this.addClass('jp-cellbox-save');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const data = saveData(model.data[this._options.mimeType]);
    this.node.textContent = '';
    if (!data) {
      return;
    }
    const row = document.createElement('div');
    row.className = 'jp-cellbox-save-row';
    const label = document.createElement('span');
    label.textContent = "save to the notebook's folder:";
    row.appendChild(label);
    const status = document.createElement('div');
    status.className = 'jp-cellbox-save-status';
    for (const file of data.files) {
      const action = new SaveAction(data.container_id, file, () => this._folderOf(this.node));
      const button = document.createElement('button');
      button.className = 'jp-Button jp-mod-styled jp-mod-reject jp-cellbox-save-button';
      button.textContent = action.label;
      button.title = `save ${file.path} into the notebook's folder`;
      button.addEventListener('click', async () => {
        button.disabled = true;
        status.textContent = `saving ${file.path} …`;
        status.textContent = await action.click();
        if (action.saved) {
          this._saved();
        }
        button.textContent = action.label;
        button.disabled = false;
      });
      row.appendChild(button);
    }
    this.node.appendChild(row);
    this.node.appendChild(status);
  }
}

/** The renderer factory: `folderOf` finds an output's notebook folder, `saved` is told of each file saved. */
export function saveButtonsFactory(
  folderOf: (node: HTMLElement) => string,
  saved: () => void = () => undefined
): IRenderMime.IRendererFactory {
  return {
    safe: true, // nothing runs but a download the user clicks, into the notebook's folder
    mimeTypes: [SAVE_MIME],
    defaultRank: 40,
    createRenderer: options => new SaveButtons(options, folderOf, saved)
  };
}
