// markdown.js - a small, safe Markdown subset for chat answers: fenced
// code blocks, inline code, **bold**, *italic*, # headings, - and 1. lists,
// paragraphs.  Safety by construction: the output is built as DOM nodes
// and every piece of model text goes in as a text node (the browser's own
// escaping), so no tag, attribute or URL in the text can become markup.
// Links stay plain text.  An unclosed ``` (still streaming) renders as code.
import { h } from './dom.js';

const FENCE = /```([^\n`]*)\n?([\s\S]*?)(?:```|$)/g;
const INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\*[^*\s][^*\n]*\*)/g;
const LIST_ITEM = /^\s*(?:[-*+]|\d+[.)])\s+(.*)$/;

export function renderMarkdown(text) {
  const frag = document.createDocumentFragment();
  let last = 0;
  for (const m of text.matchAll(FENCE)) {
    if (m[0] === '') break;
    frag.append(...blocks(text.slice(last, m.index)));
    const lang = m[1].trim();
    const code = h('code', lang ? { 'data-lang': lang } : {}, m[2].replace(/\n$/, ''));
    frag.append(h('pre', { class: 'code' }, lang ? h('span', { class: 'code-lang' }, lang) : null, code));
    last = m.index + m[0].length;
  }
  frag.append(...blocks(text.slice(last)));
  return frag;
}

function blocks(text) {
  const out = [];
  let para = [];
  let list = null;
  const flushPara = () => {
    if (para.length) out.push(h('p', {}, inline(para.join('\n'))));
    para = [];
  };
  const flushList = () => {
    if (list) out.push(list);
    list = null;
  };
  for (const line of text.split('\n')) {
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    const item = LIST_ITEM.exec(line);
    if (!line.trim()) {
      flushPara();
      flushList();
    } else if (heading) {
      flushPara();
      flushList();
      out.push(h(`h${Math.min(6, heading[1].length + 2)}`, {}, inline(heading[2])));
    } else if (item) {
      flushPara();
      const ordered = /^\s*\d/.test(line);
      if (!list || (list.tagName === 'OL') !== ordered) {
        flushList();
        list = h(ordered ? 'ol' : 'ul');
      }
      list.append(h('li', {}, inline(item[1])));
    } else {
      flushList();
      para.push(line);
    }
  }
  flushPara();
  flushList();
  return out;
}

function inline(text) {
  const parts = [];
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    parts.push(text.slice(last, m.index));
    if (m[1]) parts.push(h('code', {}, m[1].slice(1, -1)));
    else if (m[2]) parts.push(h('strong', {}, m[2].slice(2, -2)));
    else parts.push(h('em', {}, m[3].slice(1, -1)));
    last = m.index + m[0].length;
  }
  parts.push(text.slice(last));
  return parts;
}
