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
    if (child !== null && child !== undefined) el.append(child);
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
