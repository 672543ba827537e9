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

/// Facts about an element (`this`), in the shape of `airlock_core::ElementFacts` minus role/name
/// (those come from Chromium's accessibility tree).
pub const DESCRIBE: &str = r#"function() {
  const el = this;
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
    let action = new URL(attr('action') || '', document.baseURI).href;
    let method = (attr('method') || 'get').toLowerCase();
    if (isSubmit && el.hasAttribute('formaction')) action = new URL(el.getAttribute('formaction'), document.baseURI).href;
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
  const r = el.getBoundingClientRect();
  const exp = el.getAttribute('aria-expanded');
  return {
    tag, input_type: type, editable, multiline, disabled: el.disabled === true,
    href: link ? new URL(link.getAttribute('href'), document.baseURI).href : null,
    link_target: link ? (link.getAttribute('target') || null) : null,
    expanded: exp === null ? null : exp === 'true',
    is_submit: isSubmit, form: formFacts, frame_url: location.href,
    center: (r.width > 0 && r.height > 0) ? { x: r.left + r.width / 2, y: r.top + r.height / 2 } : null
  };
}"#;

/// The element with keyboard focus, following shadow roots.
pub const FOCUSED: &str = r#"function() {
  let a = document.activeElement;
  while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
  if (!a || a === document.body || a === document.documentElement) return null;
  return a;
}"#;

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

/// Whether the visible text of the page contains a string (`%TEXT%` is a JSON string literal).
pub const TEXT_PRESENT: &str =
    r#"(() => !!document.body && document.body.innerText.includes(%TEXT%))()"#;
