// The whole UI is built with these two functions: no HTML strings, so nothing a batch carries (ids,
// keys, error messages) can ever be read as markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * An HTML element. `props`: attributes, `on<event>` listeners; null, undefined and false are left out.
 * Never pass `style`: the Content-Security-Policy forbids style attributes (set `el.style.x` instead).
 * @param {string} tag
 * @param {Record<string, unknown>} [props]
 * @param {...unknown} children
 * @returns {HTMLElement}
 */
export function h(tag, props = {}, ...children) {
  return build(document.createElement(tag), props, children);
}

/**
 * An SVG element, same rules as {@link h}.
 * @param {string} tag
 * @param {Record<string, unknown>} [props]
 * @param {...unknown} children
 * @returns {SVGElement}
 */
export function s(tag, props = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

/**
 * @template {Element} E
 * @param {E} el
 * @param {Record<string, unknown>} props
 * @param {unknown[]} children
 * @returns {E}
 */
function build(el, props, children) {
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/**
 * Append children: nodes as they are, anything else as text; arrays are flattened.
 * @param {Element} el
 * @param {unknown[]} children
 */
export function append(el, children) {
  for (const child of children.flat(Number.POSITIVE_INFINITY)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/**
 * Replace an element's children.
 * @param {Element} el
 * @param {...unknown} children
 */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}
