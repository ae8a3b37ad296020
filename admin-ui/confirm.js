// Asks before an action that changes what the engine does, in a native modal <dialog>: it traps focus,
// closes on Escape and gives focus back to the button that opened it.
import { h } from './dom.js';

let counter = 0;

/** Resolves true when the user chose `confirm`, false on Cancel or Escape. Focus starts on Cancel. */
export const confirmAction = ({ title, body, confirm }) =>
  new Promise((resolve) => {
    const id = `confirm-${++counter}`;
    const dialog = h(
      'dialog',
      { class: 'confirm', 'aria-labelledby': `${id}-title`, 'aria-describedby': `${id}-body` },
      h(
        'form',
        { method: 'dialog' },
        h('h2', { id: `${id}-title` }, title),
        h('p', { id: `${id}-body` }, body),
        h(
          'div',
          { class: 'actions' },
          h('button', { type: 'submit', value: 'cancel', autofocus: true }, 'Cancel'),
          h('button', { type: 'submit', value: 'confirm', class: 'primary' }, confirm),
        ),
      ),
    );
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'confirm');
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
