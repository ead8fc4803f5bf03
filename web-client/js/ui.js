// Small DOM helpers shared by the pages.

import { applyTranslations, language, setLanguage, t } from './i18n.js';

/** Creates an element: h('button', {class: 'x', onclick: f, 'data-i18n': 'k'}, child, …). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) el.append(child);
  }
  return el;
}

/** Shows the screen with id `id` and hides the others. */
export function showScreen(id) {
  for (const s of document.querySelectorAll('[data-screen]')) {
    s.hidden = s.id !== id;
  }
  const heading = document.querySelector(`#${id} h1, #${id} h2`);
  heading?.focus?.();
}

/** Wires the language switch button found in the page. */
export function wireLanguageSwitch() {
  const button = document.getElementById('lang-switch');
  button?.addEventListener('click', () => {
    setLanguage(language() === 'zh-CN' ? 'en' : 'zh-CN');
  });
  applyTranslations(document);
}

/** Sets a translated text on an element (kept translated when the language changes). */
export function tr(el, key, vars) {
  el.dataset.i18n = key;
  if (vars) el.dataset.i18nVars = JSON.stringify(vars);
  else delete el.dataset.i18nVars;
  el.textContent = t(key, vars);
  return el;
}

/**
 * Asks in a dialog of the page (not the browser's prompt): `text` and, if given, fields to fill
 * (`{ name, label, type, required, value, options }`, `options` making it a picker). Resolves
 * to the values by name (an empty object when there are no fields), or null when cancelled.
 */
export function ask({ title, text, fields = [], confirm, cancel = 'dialog.cancel', danger = false }) {
  return new Promise((resolve) => {
    const inputs = fields.map((f) => {
      const control = f.options
        ? h('select', { name: f.name, required: f.required }, ...f.options.map(([value, key]) => tr(h('option', { value }), key)))
        : f.type === 'textarea'
          ? h('textarea', { name: f.name, rows: 4, required: f.required })
          : h('input', { name: f.name, type: f.type ?? 'text', required: f.required, min: f.min, max: f.max });
      if (f.value !== undefined) control.value = f.value;
      return { f, control, row: h('label', { class: 'field' }, tr(h('span'), f.label), control) };
    });
    const form = h(
      'form',
      { method: 'dialog' },
      title ? tr(h('h2'), title) : null,
      text ? tr(h('p'), ...(Array.isArray(text) ? text : [text])) : null,
      ...inputs.map((i) => i.row),
      h(
        'p',
        { class: 'dialog-buttons' },
        tr(h('button', { type: 'button', value: 'cancel', 'data-action': 'dialog-cancel' }), cancel),
        ' ',
        tr(h('button', { type: 'submit', value: 'ok', class: danger ? 'danger' : 'primary', 'data-action': 'dialog-ok' }), confirm),
      ),
    );
    const dialog = h('dialog', { class: 'ask' }, form);
    const done = (value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    form.querySelector('[value=cancel]').onclick = () => done(null);
    dialog.addEventListener('cancel', (e) => {
      e.preventDefault();
      done(null);
    });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (!form.reportValidity()) return;
      done(Object.fromEntries(inputs.map(({ f, control }) => [f.name, control.value.trim()])));
    });
    document.body.append(dialog);
    dialog.showModal();
    (inputs[0]?.control ?? form.querySelector('[value=ok]')).focus();
  });
}
