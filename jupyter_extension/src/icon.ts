import { LabIcon } from '@jupyterlab/ui-components';

import cellboxSvg from '../style/icons/cellbox.svg';

/** The sidebar tab's icon: a box, drawn in the theme's icon colour. */
export const cellboxIcon = new LabIcon({ name: 'cellbox:containers', svgstr: cellboxSvg });
