//! Functions evaluated in Airlock's *isolated world* of the page.
//!
//! An isolated world shares the DOM with the page but not its JavaScript globals or prototypes,
//! so a page that redefines `Element.prototype.closest` or clobbers `form.action` with an
//! `<input name=action>` cannot change what these report. Built-in getters are still taken from
//! the prototypes explicitly where DOM clobbering could shadow them.

/// Climbs from a hit node to the element a click would actually activate.
pub const ACTIONABLE: &str = r#"function() {
  let el = this.nodeType === 1 ? this : this.parentElement;
  if (!el) return null;
  const sel = 'a[href],button,input,select,textarea,summary,label,[role=button],[role=link],' +
    '[role=checkbox],[role=radio],[role=tab],[role=menuitem],[role=option],[role=switch],' +
    '[contenteditable=""],[contenteditable="true"]';
  let a = el.closest(sel) || el;
  if (a.tagName === 'LABEL' && a.control) a = a.control;
  return a;
}"#;

/// The element a click at (x, y) would activate, descending into same-origin frames. A
/// cross-origin frame is opaque: the frame element itself is returned.
pub const HIT: &str = r#"function(x, y) {
  let doc = document, el = null, ox = 0, oy = 0;
  for (let depth = 0; depth < 6; depth++) {
    el = doc.elementFromPoint(x - ox, y - oy);
    if (!el) return null;
    if (el.tagName === 'IFRAME' || el.tagName === 'FRAME') {
      let inner = null;
      try { inner = el.contentDocument; } catch (e) { inner = null; }
      if (!inner) return el;
      const r = el.getBoundingClientRect();
      ox += r.left + el.clientLeft; oy += r.top + el.clientTop;
      doc = inner;
      continue;
    }
    break;
  }
  const sel = 'a[href],button,input,select,textarea,summary,label,[role=button],[role=link],' +
    '[role=checkbox],[role=radio],[role=tab],[role=menuitem],[role=option],[role=switch],' +
    '[contenteditable=""],[contenteditable="true"]';
  let a = el.closest(sel) || el;
  if (a.tagName === 'LABEL' && a.control) a = a.control;
  return a;
}"#;

/// Facts about an element (`this`), in the shape of `airlock_core::ElementFacts` minus role/name
/// (those come from Chromium's accessibility tree).
pub const DESCRIBE: &str = r#"function() {
  const el = this;
  const doc = el.ownerDocument || document;
  const win = doc.defaultView || window;
  const tag = el.tagName.toLowerCase();
  let type = null;
  if (tag === 'input') type = (el.getAttribute('type') || 'text').toLowerCase();
  if (tag === 'button') type = (el.getAttribute('type') || 'submit').toLowerCase();
  const textTypes = ['text','search','email','url','tel','password','number'];
  const editable = tag === 'textarea' || (tag === 'input' && textTypes.includes(type)) || el.isContentEditable === true;
  const multiline = tag === 'textarea' || el.isContentEditable === true;
  const isSubmit = (tag === 'button' && type === 'submit') || (tag === 'input' && (type === 'submit' || type === 'image'));
  const form = el.form || el.closest('form');
  let formFacts = null;
  if (form) {
    const getElements = Object.getOwnPropertyDescriptor(HTMLFormElement.prototype, 'elements').get;
    const attr = (n) => Element.prototype.getAttribute.call(form, n);
    let action = new URL(attr('action') || '', doc.baseURI).href;
    let method = (attr('method') || 'get').toLowerCase();
    if (isSubmit && el.hasAttribute('formaction')) action = new URL(el.getAttribute('formaction'), doc.baseURI).href;
    if (isSubmit && el.hasAttribute('formmethod')) method = el.getAttribute('formmethod').toLowerCase();
    if (method !== 'post' && method !== 'dialog') method = 'get';
    const fields = [];
    let hasPassword = false;
    for (const f of getElements.call(form)) {
      const name = f.getAttribute('name');
      const t = (f.getAttribute('type') || '').toLowerCase();
      if (t === 'password') hasPassword = true;
      if (!name || f.disabled) continue;
      if (t === 'password') { fields.push([name, '[password]']); continue; }
      if (['submit','button','image','reset'].includes(t) || f.tagName === 'BUTTON') {
        if (f === el) fields.push([name, String(f.value)]);
        continue;
      }
      if (t === 'file') { fields.push([name, '[file]']); continue; }
      if ((t === 'checkbox' || t === 'radio') && !f.checked) continue;
      fields.push([name, String(f.value).slice(0, 4000)]);
    }
    formFacts = { action, method: method.toUpperCase(), has_password: hasPassword, fields };
  }
  const link = el.closest('a[href]');
  // Box in the top-level viewport: add the offsets of the frames the element sits in.
  const b = el.getBoundingClientRect();
  let fx = 0, fy = 0;
  for (let w = win; w && w.frameElement; w = w.parent) {
    const fr = w.frameElement.getBoundingClientRect();
    fx += fr.left + w.frameElement.clientLeft; fy += fr.top + w.frameElement.clientTop;
  }
  const r = { left: b.left + fx, top: b.top + fy, width: b.width, height: b.height };
  let opacity = 1, hidden = false;
  for (let n = el; n && n.nodeType === 1; n = n.parentElement) {
    const cs = win.getComputedStyle(n);
    opacity *= parseFloat(cs.opacity);
    if (cs.visibility === 'hidden' || cs.display === 'none') hidden = true;
  }
  const invisible = hidden || opacity < 0.05;
  const exp = el.getAttribute('aria-expanded');
  return {
    tag, input_type: type, editable, multiline, disabled: el.disabled === true,
    href: link ? new URL(link.getAttribute('href'), doc.baseURI).href : null,
    link_target: link ? (link.getAttribute('target') || null) : null,
    expanded: exp === null ? null : exp === 'true',
    is_submit: isSubmit, form: formFacts, frame_url: doc.location ? doc.location.href : '',
    center: (r.width > 0 && r.height > 0) ? { x: r.left + r.width / 2, y: r.top + r.height / 2 } : null,
    invisible: invisible,
    frame_src: (tag === 'iframe' || tag === 'frame')
      ? new URL(el.getAttribute('src') || 'about:blank', doc.baseURI).href : null
  };
}"#;

/// Whether a person can see the element (`this`). Returns `{hidden, clipped}`: `hidden` is why
/// a person cannot see it (null when they can); `clipped` says that a `clip-path` or `clip` on
/// it or an ancestor may cut it away, which a failed hit test then reports as the reason.
///
/// Measured on the element whichever form named it, so a decoy is hidden the same way for a
/// point, a ref, a role and name or a selector: fully transparent, `visibility: hidden` or not
/// rendered, a box too small to see, outside the viewport, or clipped to nothing by the boxes
/// of `overflow` containers around it.
pub const VISIBILITY: &str = r#"function() {
  const el = this;
  const doc = el.ownerDocument || document;
  const win = doc.defaultView || window;
  let fx = 0, fy = 0;
  for (let w = win; w && w.frameElement; w = w.parent) {
    const fr = w.frameElement.getBoundingClientRect();
    fx += fr.left + w.frameElement.clientLeft; fy += fr.top + w.frameElement.clientTop;
  }
  let opacity = 1, clipped = false, why = null;
  for (let n = el; n && n.nodeType === 1; n = n.parentElement) {
    const cs = win.getComputedStyle(n);
    opacity *= parseFloat(cs.opacity);
    if (!why && cs.display === 'none') why = 'not rendered (display: none)';
    if (!why && (cs.visibility === 'hidden' || cs.visibility === 'collapse')) why = 'hidden (visibility: hidden)';
    if ((cs.clipPath && cs.clipPath !== 'none') || (cs.clip && cs.clip !== 'auto')) clipped = true;
  }
  if (!why && opacity < 0.05) why = 'fully transparent (opacity ' + (Math.round(opacity * 100) / 100) + ')';
  const b = el.getBoundingClientRect();
  // The part of the box a person could see: inside every clipping container and the viewport.
  let l = b.left, t = b.top, r = b.right, bo = b.bottom;
  for (let n = el.parentElement; n && n.nodeType === 1; n = n.parentElement) {
    const cs = win.getComputedStyle(n);
    if (cs.overflowX !== 'visible' || cs.overflowY !== 'visible' || cs.contain.includes('paint')) {
      const c = n.getBoundingClientRect();
      if (n !== doc.documentElement && n !== doc.body) {
        l = Math.max(l, c.left); t = Math.max(t, c.top); r = Math.min(r, c.right); bo = Math.min(bo, c.bottom);
      }
    }
  }
  const w0 = Math.max(0, r - l), h0 = Math.max(0, bo - t);
  const vw = win.innerWidth, vh = win.innerHeight;
  const vl = Math.max(l, 0), vt = Math.max(t, 0), vr = Math.min(r, vw), vb = Math.min(bo, vh);
  if (!why && (b.width === 0 || b.height === 0)) why = 'it has no box (zero size)';
  else if (!why && (w0 === 0 || h0 === 0)) why = 'clipped to nothing by a container around it';
  else if (!why && (vr <= vl || vb <= vt)) why = 'outside the viewport (at ' + Math.round(b.left + fx) + ', ' + Math.round(b.top + fy) + ')';
  else if (!why && (vr - vl < 4 || vb - vt < 4)) why = 'too small to see (' + Math.round(vr - vl) + 'x' + Math.round(vb - vt) + ' px)';
  return { hidden: why, clipped };
}"#;

/// Whether the topmost element at a point is a layer over an interactive element that is not
/// its own ancestor (arguments: x, y): a click there reaches the layer, not the control a
/// person (or a model) sees or expects. See-through, faintly tinted, zero-width-text and
/// visible lookalike layers are all covers: what the layer looks like does not matter, only
/// that the control under it would not get the click. Returns a description of the covered
/// element, or null.
pub const TRANSPARENT_COVER: &str = r#"function(x, y) {
  const stack = document.elementsFromPoint(x, y);
  if (stack.length < 2) return null;
  const top = stack[0];
  const sel = 'a[href],button,input,select,textarea,summary,[role=button],[role=link],[role=menuitem],[role=tab],[role=checkbox],[role=radio],[role=switch],[contenteditable=""],[contenteditable=true]';
  if (top.closest(sel)) return null;
  for (const el of stack.slice(1)) {
    if (el.contains(top)) continue;
    const hit = el.closest(sel);
    if (hit && !hit.contains(top)) {
      const name = (hit.getAttribute('aria-label') || hit.innerText || hit.value || '').trim().slice(0, 80);
      return hit.tagName.toLowerCase() + " '" + name + "'";
    }
  }
  return null;
}"#;

/// For a `<select>` (`this`, not disabled): chooses the option whose visible text or value is
/// `want` (exactly, else ignoring case and runs of spaces) and fires `input` and `change`, as a
/// person's choice does. Returns null for any other element; `{name, chosen}` when chosen;
/// `{name, options}` (the first labels) when nothing matches. Property getters come from the
/// prototypes, so a page cannot shadow them with clobbered names.
pub const CHOOSE_OPTION: &str = r#"function(want) {
  if (!(this instanceof HTMLSelectElement) || this.disabled) return null;
  const sel = this;
  const norm = (s) => String(s).replace(/\s+/g, ' ').trim();
  const lower = (s) => norm(s).toLowerCase();
  const opts = Array.from(sel.options).filter(o => !o.disabled);
  const label = (o) => norm(o.label || o.text);
  const name = norm(sel.getAttribute('aria-label') || (sel.labels && sel.labels[0] ? sel.labels[0].innerText : '') || sel.name || '');
  let hit = opts.find(o => label(o) === norm(want) || o.value === want)
    || opts.find(o => lower(label(o)) === lower(want) || lower(o.value) === lower(want));
  if (!hit) return { name, options: opts.slice(0, 20).map(label).join(', ') };
  sel.focus();
  if (!hit.selected || sel.multiple) {
    if (!sel.multiple) sel.selectedIndex = hit.index; else hit.selected = true;
    sel.dispatchEvent(new Event('input', { bubbles: true, composed: true }));
    sel.dispatchEvent(new Event('change', { bubbles: true }));
  }
  return { name, chosen: label(hit) };
}"#;

/// The element with keyboard focus, following shadow roots.
pub const FOCUSED: &str = r#"function() {
  let a = document.activeElement;
  while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
  if (!a || a === document.body || a === document.documentElement) return null;
  return a;
}"#;

/// A digest of what a person could see change on the page: address, title, visible text, form
/// values, open/closed and checked states. Focus alone does not count: a click always moves it. Only compared before and after a step, never
/// stored (it hashes field values, which may be secrets).
pub const PAGE_FINGERPRINT: &str = r#"(() => {
  let h = 2166136261;
  const add = (s) => { s = String(s); for (let i = 0; i < s.length; i++) { h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0; } h = Math.imul(h ^ 10, 16777619) >>> 0; };
  add(location.href); add(document.title);
  add(document.body ? document.body.innerText : "");
  for (const el of document.querySelectorAll("input, textarea, select")) { add(el.value); add(el.checked); }
  for (const el of document.querySelectorAll("[aria-expanded], [aria-checked], [aria-selected], details, dialog")) {
    add(el.getAttribute("aria-expanded")); add(el.getAttribute("aria-checked")); add(el.getAttribute("aria-selected")); add(el.open);
  }
  return h;
})()"#;

/// Page readiness for the settle check. The mutation observer lives in the isolated world, so
/// the page can neither see nor disable it.
pub const SETTLE_STATE: &str = r#"(() => {
  const w = window;
  if (!w.__airlockSettle) {
    w.__airlockSettle = { last: performance.now() };
    new MutationObserver(() => { w.__airlockSettle.last = performance.now(); })
      .observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
  }
  return {
    ready: document.readyState,
    busy: !!document.querySelector('[aria-busy="true"]'),
    quiet: performance.now() - w.__airlockSettle.last
  };
})()"#;

/// The main document's HTTP status (0 when the browser does not know) and how many redirects
/// led to it, from Navigation Timing.
pub const DOCUMENT_STATUS: &str = r#"(() => {
  const e = performance.getEntriesByType("navigation")[0];
  return {
    status: e && typeof e.responseStatus === "number" ? e.responseStatus : 0,
    redirects: e && typeof e.redirectCount === "number" ? e.redirectCount : 0,
  };
})()"#;

/// Whether the visible text of the page contains a string (`%TEXT%` is a JSON string literal).
pub const TEXT_PRESENT: &str =
    r#"(() => !!document.body && document.body.innerText.includes(%TEXT%))()"#;

/// Every piece of text on the page with where it lives, including what a human would not see
/// (hidden, zero-size, off-screen, attributes, same-origin frames). For the injection scanner.
pub const PAGE_TEXTS: &str = r#"(() => {
  const out = [];
  let budget = 200000;
  const push = (location, text) => {
    text = (text || '').trim();
    if (text.length < 8 || budget <= 0) return;
    text = text.slice(0, 2000);
    budget -= text.length;
    out.push({ location, text });
  };
  const walk = (doc, prefix) => {
    const win = doc.defaultView;
    const els = doc.querySelectorAll('*');
    for (let i = 0; i < els.length && i < 5000; i++) {
      const el = els[i];
      for (const a of ['aria-label', 'title', 'alt', 'placeholder', 'aria-description']) {
        if (el.hasAttribute(a)) push(prefix + a, el.getAttribute(a));
      }
      if (el.tagName === 'IFRAME' || el.tagName === 'FRAME') {
        let inner = null;
        try { inner = el.contentDocument; } catch (e) { inner = null; }
        if (inner) walk(inner, prefix + 'frame:');
      }
    }
    const tw = doc.createTreeWalker(doc.body || doc.documentElement, NodeFilter.SHOW_TEXT);
    for (let n = tw.nextNode(), k = 0; n && k < 20000; n = tw.nextNode(), k++) {
      const el = n.parentElement;
      if (!el || el.tagName === 'SCRIPT' || el.tagName === 'STYLE' || el.tagName === 'NOSCRIPT') continue;
      let where = 'visible';
      const visible = el.checkVisibility ? el.checkVisibility({ opacityProperty: true, visibilityProperty: true }) : true;
      const cs = win.getComputedStyle(el);
      const r = el.getBoundingClientRect();
      // The background a person sees behind the text: the nearest one that is painted.
      let bg = 'rgba(0, 0, 0, 0)';
      for (let p = el; p && p.nodeType === 1; p = p.parentElement) {
        const b = win.getComputedStyle(p).backgroundColor;
        if (b && b !== 'transparent' && !/rgba\(.*,\s*0\)$/.test(b)) { bg = b; break; }
      }
      const tiny = r.width <= 2 || r.height <= 2;
      if (!visible || parseFloat(cs.fontSize) < 2 || cs.color === bg || tiny) where = 'hidden';
      else if (r.right < 0 || r.bottom < 0 || r.left > win.innerWidth + 2000 || r.top > 100000) where = 'offscreen';
      push(prefix + where, n.nodeValue);
    }
  };
  walk(document, '');
  return out;
})()"#;

/// Viewport rectangles of everything that shows one of the given strings: fields whose value
/// contains it and text that contains it (argument: the list of strings). For screenshot masking;
/// runs in the isolated world, so the page never sees the strings.
pub const RECTS_SHOWING: &str = r#"function(needles) {
  const out = [];
  const has = (t) => t && needles.some((n) => t.includes(n));
  const add = (r) => { if (r.width > 0 && r.height > 0) out.push({ x: r.left, y: r.top, width: r.width, height: r.height }); };
  for (const el of document.querySelectorAll('input, textarea')) {
    if (has(el.value)) add(el.getBoundingClientRect());
  }
  const tw = document.createTreeWalker(document.body || document.documentElement, NodeFilter.SHOW_TEXT);
  for (let n = tw.nextNode(), k = 0; n && k < 20000; n = tw.nextNode(), k++) {
    if (has(n.nodeValue)) {
      const range = document.createRange();
      range.selectNodeContents(n);
      for (const r of range.getClientRects()) add(r);
      if (n.parentElement) add(n.parentElement.getBoundingClientRect());
    }
  }
  return out.slice(0, 200);
}"#;
