// A tiny DOM for the dashboard's rendering tests: elements, text nodes, attributes and
// listeners, and nothing that parses markup. The HTML sinks (innerHTML, outerHTML,
// insertAdjacentHTML, document.write) throw, so code that used one would fail its test.

function sink(name) {
  return () => {
    throw new Error(`${name} used: the dashboard must not parse HTML`);
  };
}

class Node {
  constructor(doc) {
    this.ownerDocument = doc;
    this.parentNode = null;
    this.childNodes = [];
  }

  get firstChild() {
    return this.childNodes[0] ?? null;
  }

  get lastChild() {
    return this.childNodes[this.childNodes.length - 1] ?? null;
  }

  appendChild(node) {
    return this.insertBefore(node, null);
  }

  insertBefore(node, ref) {
    if (!(node instanceof Node)) throw new TypeError("insertBefore: not a node");
    if (node.nodeType === 11) {
      for (const child of [...node.childNodes]) this.insertBefore(child, ref);
      return node;
    }
    if (node.parentNode) node.parentNode.removeChild(node);
    const at = ref === null ? this.childNodes.length : this.childNodes.indexOf(ref);
    if (at < 0) throw new Error("insertBefore: reference is not a child");
    this.childNodes.splice(at, 0, node);
    node.parentNode = this;
    return node;
  }

  removeChild(node) {
    const at = this.childNodes.indexOf(node);
    if (at < 0) throw new Error("removeChild: not a child");
    this.childNodes.splice(at, 1);
    node.parentNode = null;
    return node;
  }

  append(...nodes) {
    for (const n of nodes) this.appendChild(typeof n === "string" ? this.ownerDocument.createTextNode(n) : n);
  }

  replaceChildren(...nodes) {
    for (const child of [...this.childNodes]) this.removeChild(child);
    this.append(...nodes);
  }

  get textContent() {
    return this.childNodes.map((c) => c.textContent).join("");
  }

  set textContent(value) {
    this.replaceChildren();
    if (value !== "" && value !== null && value !== undefined) this.appendChild(this.ownerDocument.createTextNode(String(value)));
  }
}

class Text extends Node {
  constructor(doc, data) {
    super(doc);
    this.nodeType = 3;
    this.data = String(data);
  }

  get textContent() {
    return this.data;
  }

  set textContent(value) {
    this.data = String(value);
  }
}

class Fragment extends Node {
  constructor(doc) {
    super(doc);
    this.nodeType = 11;
  }
}

class Element extends Node {
  constructor(doc, tag) {
    super(doc);
    this.nodeType = 1;
    this.tagName = String(tag).toUpperCase();
    this.attributes = new Map();
    this.listeners = new Map();
    // the form properties, with a browser's defaults
    this.value = "";
    this.checked = false;
    this.disabled = false;
    this.hidden = false;
  }

  setAttribute(name, value) {
    this.attributes.set(String(name).toLowerCase(), String(value));
  }

  getAttribute(name) {
    return this.attributes.has(name) ? this.attributes.get(name) : null;
  }

  hasAttribute(name) {
    return this.attributes.has(name);
  }

  removeAttribute(name) {
    this.attributes.delete(name);
  }

  get className() {
    return this.getAttribute("class") ?? "";
  }

  set className(value) {
    this.setAttribute("class", value);
  }

  addEventListener(type, handler) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(handler);
  }

  /** Calls the listeners of `type`; returns what they returned (promises included). */
  dispatch(type, extra = {}) {
    const event = { type, target: this, defaultPrevented: false, preventDefault() { this.defaultPrevented = true; }, ...extra };
    return (this.listeners.get(type) || []).map((fn) => fn(event));
  }

  getElementsByTagName(tag) {
    return findAll(this, (n) => n.tagName === tag.toUpperCase());
  }
}

for (const name of ["innerHTML", "outerHTML"]) {
  Object.defineProperty(Element.prototype, name, { get: sink(name), set: sink(name) });
}
Element.prototype.insertAdjacentHTML = sink("insertAdjacentHTML");

export function createDocument() {
  const doc = {
    createElement: (tag) => new Element(doc, tag),
    createTextNode: (data) => new Text(doc, data),
    createDocumentFragment: () => new Fragment(doc),
    write: sink("document.write"),
    writeln: sink("document.writeln"),
  };
  return doc;
}

/** Installs a fresh fake document as the global `document`. */
export function installDocument() {
  globalThis.document = createDocument();
  return globalThis.document;
}

/** Every element under `root` (itself included) for which `pred` holds. */
export function findAll(root, pred) {
  const found = [];
  const walk = (node) => {
    if (node.nodeType === 1 && pred(node)) found.push(node);
    for (const c of node.childNodes) walk(c);
  };
  walk(root);
  return found;
}

export function byTag(root, tag) {
  return findAll(root, (n) => n.tagName === tag.toUpperCase());
}

/** Every attribute name used anywhere under `root`. */
export function attributeNames(root) {
  const names = new Set();
  findAll(root, () => true).forEach((el) => el.attributes.forEach((_v, k) => names.add(k)));
  return names;
}

/** A fake API client answering GETs from a table of path -> document (or Error). */
export function fakeApi(answers = {}) {
  const calls = [];
  const answer = (key) => {
    const a = typeof answers === "function" ? answers(key) : answers[key.path];
    if (a instanceof Error) return Promise.reject(a);
    return Promise.resolve(structuredClone(a ?? {}));
  };
  return {
    calls,
    get(path, query) {
      calls.push({ method: "GET", path, query });
      return answer({ method: "GET", path, query });
    },
    send(method, path, body) {
      calls.push({ method, path, body });
      return answer({ method, path, body });
    },
    refresh: async () => false,
    login: async () => ({}),
    logout: async () => {},
    signedIn: () => true,
    user: () => null,
  };
}
