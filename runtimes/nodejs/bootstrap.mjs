// Alonzo's Node.js runtime bootstrap: speaks the Lambda Runtime API (2018-06-01).
//
// Started by the platform as `node /var/runtime/bootstrap.mjs` with the working directory
// `/var/task`. Node 18 to 22, built-in modules only. It mirrors AWS's managed Node.js
// runtime (aws-lambda-nodejs-runtime-interface-client 3.x, the one behind nodejs18.x to
// nodejs22.x):
//
// - init: `_HANDLER` is `[dir/]file.export[.nested]`; the file is tried as AWS does
//   (extensionless and `.js` through require unless a package.json says `"type":
//   "module"`, then `.js` as ESM in that case, `.mjs`, `.cjs`, then Node resolution from
//   the task root). Init failures go to `/runtime/init/error`, then exit 129.
// - loop: async handlers and promises, callback handlers with
//   `context.callbackWaitsForEmptyEventLoop`, the legacy `context.done/succeed/fail`.
// - console: `<ISO time>\t<request id>\t<LEVEL>\t<message>` lines (or JSON lines with
//   AWS_LAMBDA_LOG_FORMAT=JSON), filtered by AWS_LAMBDA_LOG_LEVEL.
// - uncaught exceptions and unhandled rejections fail the current invocation (or the
//   init) and end the process, as on Lambda.
// - response streaming (`awslambda.streamifyResponse`) posts a chunked response with
//   `Lambda-Runtime-Function-Response-Mode: streaming`.

import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import util from 'node:util';
import { Writable } from 'node:stream';
import Module, { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

/**
 * A runtime started ahead of its function (the platform's pre-started sandboxes) is started
 * with `_RUNTIME_ASSIGNMENT_FD` naming a pipe, and reads from it the function's working
 * directory and environment before anything else reads the environment: NUL-terminated
 * `cwd` then `KEY=VALUE` entries, then an empty entry. It is called at the end of this
 * module, just before `main()`: the module's top level reads no environment (`JSON_LOGS` is
 * set by `main`), so everything sees the function's.
 */
function awaitAssignment() {
  const fdText = process.env._RUNTIME_ASSIGNMENT_FD;
  if (!fdText) return;
  const fd = Number(fdText);
  const chunks = [];
  const buf = Buffer.alloc(65536);
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, null);
    if (n === 0) {
      process.stderr.write('alonzo: the platform closed the assignment pipe\n');
      process.exit(1);
    }
    chunks.push(Buffer.from(buf.subarray(0, n)));
    const data = Buffer.concat(chunks);
    const end = data.length;
    if (end >= 2 && data[end - 1] === 0 && data[end - 2] === 0) {
      fs.closeSync(fd);
      const entries = data.subarray(0, end - 2).toString('utf8').split('\0');
      for (const key of Object.keys(process.env)) delete process.env[key];
      for (const entry of entries.slice(1)) {
        const at = entry.indexOf('=');
        process.env[entry.slice(0, at)] = entry.slice(at + 1);
      }
      process.chdir(entries[0]);
      return;
    }
  }
}

const require = createRequire(import.meta.url);
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';
const ERROR_BODY_TRAILER = 'Lambda-Runtime-Function-Error-Body';
const XRAY_CAUSE_HEADER = 'Lambda-Runtime-Function-XRay-Error-Cause';
const API_PREFIX = '/2018-06-01';

// ---------------------------------------------------------------------------------------
// Errors, named as AWS's runtime names them.
// ---------------------------------------------------------------------------------------

class ImportModuleError extends Error {}
class HandlerNotFound extends Error {}
class MalformedHandlerName extends Error {}
class UserCodeSyntaxError extends Error {
  constructor(original) {
    super(String(original));
    if (typeof original?.stack === 'string') this.stack = original.stack;
  }
}
class MalformedStreamingHandler extends Error {}
class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
class NodeJsExit extends Error {
  constructor() {
    super(
      'The Lambda runtime exited before the handler finished: the event loop became empty ' +
        'while the promise returned by the async handler was still pending.',
    );
  }
}
for (const cls of [
  ImportModuleError,
  HandlerNotFound,
  MalformedHandlerName,
  UserCodeSyntaxError,
  MalformedStreamingHandler,
  UnhandledPromiseRejection,
  NodeJsExit,
]) {
  cls.prototype.name = `Runtime.${cls.name}`;
}

function isErrorLike(obj) {
  return (
    obj &&
    typeof obj.name === 'string' &&
    typeof obj.message === 'string' &&
    typeof obj.stack === 'string' &&
    obj.name &&
    obj.message &&
    obj.stack
  );
}

function intoError(err) {
  return err instanceof Error ? err : new Error(err);
}

/** The body AWS's runtime posts for an error: {errorType, errorMessage, trace}. */
function toRapidResponse(error) {
  try {
    if (util.types.isNativeError(error) || isErrorLike(error)) {
      return {
        errorType: error.name,
        errorMessage: error.message,
        trace: error.stack.split('\n'),
      };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
    };
  }
}

function withEnumerableProperties(value) {
  if (value instanceof Error) {
    const ret = Object.assign(
      { errorType: value.name, errorMessage: value.message, code: value.code },
      value,
    );
    if (typeof value.stack === 'string') ret.stack = value.stack.split('\n');
    return ret;
  }
  return value;
}

/** Error text for text-format log lines; it always starts with a tab (as AWS's does). */
function toFormatted(error) {
  try {
    return '\t' + JSON.stringify(error, (_k, v) => withEnumerableProperties(v));
  } catch {
    return '\t' + JSON.stringify(toRapidResponse(error));
  }
}

function xrayCause(error) {
  try {
    const frames = [];
    const paths = new Set();
    const stack = typeof error?.stack === 'string' ? error.stack.split('\n').slice(1) : [];
    for (const line of stack) {
      const m = line.match(/^\s*at (?:(.*?) \()?(.*?):(\d+):\d+\)?$/);
      if (!m) continue;
      const file = m[2].startsWith('file://') ? m[2].slice(7) : m[2];
      frames.push({ path: file, line: Number(m[3]), label: m[1] || 'anonymous' });
      paths.add(file);
    }
    const cause = JSON.stringify({
      working_directory: process.cwd(),
      exceptions: [
        {
          type: error?.name ?? typeof error,
          message: error?.message ?? String(error),
          stack: frames,
        },
      ],
      paths: [...paths],
    });
    return cause.length < 1024 * 1024 ? cause : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// Console.
// ---------------------------------------------------------------------------------------

const REQUEST_ID_SYMBOL = Symbol.for('aws.lambda.runtime.requestId');
const TENANT_ID_SYMBOL = Symbol.for('aws.lambda.runtime.tenantId');
const LEVELS = Object.freeze({
  TRACE: { name: 'TRACE', priority: 1 },
  DEBUG: { name: 'DEBUG', priority: 2 },
  INFO: { name: 'INFO', priority: 3 },
  WARN: { name: 'WARN', priority: 4 },
  ERROR: { name: 'ERROR', priority: 5 },
  FATAL: { name: 'FATAL', priority: 6 },
});
// Read from the function's environment when main() starts.
let JSON_LOGS = false;

function jsonErrorReplacer(_key, value) {
  if (value instanceof Error) {
    return Object.assign(
      {
        errorType: value?.constructor?.name ?? 'UnknownError',
        errorMessage: value.message,
        stackTrace: typeof value.stack === 'string' ? value.stack.split('\n') : value.stack,
      },
      value,
    );
  }
  return value;
}

function formatJsonLine(time, level, message, params) {
  const result = { timestamp: time, level: level.name, requestId: globalThis[REQUEST_ID_SYMBOL] };
  const tenantId = globalThis[TENANT_ID_SYMBOL];
  if (tenantId !== undefined) result.tenantId = tenantId;
  if (params.length === 0) {
    result.message = message;
    try {
      return JSON.stringify(result, jsonErrorReplacer);
    } catch {
      result.message = util.format(message);
      return JSON.stringify(result);
    }
  }
  result.message = util.format(message, ...params);
  for (const param of [message, ...params]) {
    if (param instanceof Error) {
      result.errorType = param?.constructor?.name ?? 'UnknownError';
      result.errorMessage = param.message;
      result.stackTrace = typeof param.stack === 'string' ? param.stack.split('\n') : [];
      break;
    }
  }
  return JSON.stringify(result);
}

function writeLog(level, message, params) {
  const time = new Date().toISOString();
  const line = JSON_LOGS
    ? formatJsonLine(time, level, message, params)
    : `${time}\t${globalThis[REQUEST_ID_SYMBOL]}\t${level.name}\t${util.format(message, ...params)}`;
  // One record per line: embedded newlines become carriage returns, as on Lambda.
  process.stdout.write(line.replace(/\n/g, '\r') + '\n');
}

function patchConsole() {
  const configured = LEVELS[(process.env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase()];
  // Lambda's default application log level is INFO for JSON logs; text logs show all.
  const minimum = configured ?? (JSON_LOGS ? LEVELS.INFO : LEVELS.TRACE);
  const nop = () => {};
  const make = (level) =>
    level.priority >= minimum.priority
      ? (message, ...params) => writeLog(level, message, params)
      : nop;
  console.trace = make(LEVELS.TRACE);
  console.debug = make(LEVELS.DEBUG);
  console.info = make(LEVELS.INFO);
  console.log = console.info;
  console.warn = make(LEVELS.WARN);
  console.error = make(LEVELS.ERROR);
  console.fatal = (message, ...params) => writeLog(LEVELS.FATAL, message, params);
}

/** How AWS's runtime logs a failed invocation or init. */
function logError(label, err) {
  if (JSON_LOGS) console.error(intoError(err));
  else console.error(label, toFormatted(intoError(err)));
}

// ---------------------------------------------------------------------------------------
// Runtime API client (one keep-alive connection).
// ---------------------------------------------------------------------------------------

function headerValue(value) {
  return String(value)
    .replace(/[\r\n]+/g, ' ')
    .replace(/[^\t\x20-\x7e\x80-\xff]/g, '?');
}

function safeStringify(body) {
  const text = JSON.stringify(body === undefined ? null : body);
  return text === undefined ? 'null' : text;
}

/**
 * One HTTP/1.1 connection to the Runtime API, one request at a time. Node's `http` client
 * costs about half a millisecond per request; this costs a tenth of that (AWS's runtime
 * uses a native client for the same reason). While idle the socket is unref'd, so it
 * never keeps the event loop alive (callbackWaitsForEmptyEventLoop depends on it).
 */
class Connection {
  constructor(host, port) {
    this.socket = net.connect({ host, port, noDelay: true });
    this.socket.unref();
    this.chunks = [];
    this.length = 0;
    this.waiter = null;
    this.gotBytes = false;
    this.need = 0;
    this.closed = false;
    this.socket.on('data', (d) => this.onData(d));
    this.socket.on('error', (e) => this.onClose(e));
    this.socket.on('close', () => this.onClose(new Error('connection closed by the Runtime API')));
  }

  send(data) {
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.gotBytes = false;
      this.socket.ref();
      this.socket.write(data);
    });
  }

  onData(data) {
    this.gotBytes = true;
    this.chunks.push(data);
    this.length += data.length;
    // A large body arrives in many chunks: join them only once all are there.
    if (!this.waiter || this.length < this.need) return;
    const buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.length);
    this.chunks = [buf];
    const parsed = parseResponse(buf, false);
    if (parsed && parsed.need) this.need = parsed.need;
    else if (parsed) this.finish(parsed, buf);
  }

  finish(parsed, buf) {
    const rest = buf.subarray(parsed.consumed);
    this.chunks = rest.length ? [rest] : [];
    this.length = rest.length;
    this.need = 0;
    const waiter = this.waiter;
    this.waiter = null;
    if (parsed.close) this.destroy();
    else this.socket.unref();
    waiter.resolve(parsed);
  }

  onClose(err) {
    if (this.closed) return;
    this.closed = true;
    const waiter = this.waiter;
    if (!waiter) return;
    // A body delimited by the end of the connection is complete now.
    const buf = Buffer.concat(this.chunks, this.length);
    const parsed = this.gotBytes ? parseResponse(buf, true) : null;
    if (parsed && !parsed.need) return this.finish(parsed, buf);
    this.waiter = null;
    err.gotBytes = this.gotBytes;
    waiter.reject(err);
  }

  destroy() {
    this.closed = true;
    this.socket.destroy();
  }
}

/**
 * Parses one response from `buf`: the response, `{need}` (the total byte count still to
 * wait for) or null while incomplete.
 */
function parseResponse(buf, atEof) {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const lines = buf.toString('utf8', 0, headEnd).split('\r\n');
  const status = parseInt(lines[0].split(' ')[1], 10);
  const headers = {};
  for (let i = 1; i < lines.length; i++) {
    const colon = lines[i].indexOf(':');
    if (colon < 0) continue;
    const name = lines[i].slice(0, colon).trim().toLowerCase();
    const value = lines[i].slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  const close = (headers.connection || '').toLowerCase() === 'close';
  let pos = headEnd + 4;
  if ((headers['transfer-encoding'] || '').toLowerCase().includes('chunked')) {
    const parts = [];
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', pos);
      if (lineEnd < 0) return null;
      const size = parseInt(buf.toString('latin1', pos, lineEnd).split(';')[0].trim(), 16);
      pos = lineEnd + 2;
      if (size === 0) {
        // Trailers, then an empty line.
        for (;;) {
          const end = buf.indexOf('\r\n', pos);
          if (end < 0) return null;
          const empty = end === pos;
          pos = end + 2;
          if (empty) break;
        }
        break;
      }
      if (buf.length < pos + size + 2) return null;
      parts.push(buf.subarray(pos, pos + size));
      pos += size + 2;
    }
    return { status, headers, body: Buffer.concat(parts).toString('utf8'), consumed: pos, close };
  }
  if ('content-length' in headers) {
    const n = parseInt(headers['content-length'], 10);
    if (buf.length < pos + n) return { need: pos + n };
    return { status, headers, body: buf.toString('utf8', pos, pos + n), consumed: pos + n, close };
  }
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return { status, headers, body: '', consumed: pos, close };
  }
  if (!atEof) return null;
  return { status, headers, body: buf.toString('utf8', pos), consumed: buf.length, close: true };
}

class RuntimeClient {
  constructor(address) {
    const m = address.match(/^\[(.*)\]:(\d+)$/) || address.match(/^(.*):(\d+)$/);
    this.hostname = m ? m[1] : address;
    this.port = m ? parseInt(m[2], 10) : 80;
    this.hostHeader = address;
    this.idle = [];
    this.userAgent = `alonzo-nodejs/${process.versions.node}`;
    this.agent = null; // node:http, for streamed responses only
  }

  /**
   * Sends one request on an idle connection (or a new one: a request made while another
   * is in flight, say an error report while GET /next waits, gets its own connection).
   * A reused connection that the server had closed is replaced once.
   */
  async request(method, path, body, headers = {}) {
    const payload = body === undefined ? null : Buffer.from(body, 'utf8');
    let head = `${method} ${API_PREFIX}${path} HTTP/1.1\r\nHost: ${this.hostHeader}\r\nUser-Agent: ${this.userAgent}\r\n`;
    if (payload) head += `Content-Length: ${payload.length}\r\n`;
    for (const [name, value] of Object.entries(headers)) head += `${name}: ${headerValue(value)}\r\n`;
    head += '\r\n';
    const data = payload ? Buffer.concat([Buffer.from(head, 'latin1'), payload]) : Buffer.from(head, 'latin1');
    for (let attempt = 0; ; attempt++) {
      let conn = null;
      while (this.idle.length && !conn) {
        const c = this.idle.pop();
        if (!c.closed) conn = c;
      }
      const reused = conn !== null;
      if (!conn) conn = new Connection(this.hostname, this.port);
      try {
        const res = await conn.send(data);
        if (!conn.closed) this.idle.push(conn);
        return res;
      } catch (err) {
        conn.destroy();
        if (!reused || attempt > 0 || err.gotBytes) throw err;
      }
    }
  }

  async post(path, body, headers) {
    const res = await this.request('POST', path, body, {
      'Content-Type': 'application/json',
      ...headers,
    });
    if (res.status === 202) return;
    const message = `Request to Lambda Runtime '${path}' endpoint failed. Reason: '${res.status}'. Response body: '${res.body}'`;
    if (res.status >= 400 && res.status < 500) {
      // The platform refused this answer (unknown request id, response too large...): it
      // has failed the invocation itself; carry on with the next one.
      process.stderr.write(message + '\n');
      return;
    }
    throw new Error(message);
  }

  async nextInvocation() {
    const res = await this.request('GET', '/runtime/invocation/next');
    if (res.status !== 200) {
      throw new Error(`Failed to get next invocation: HTTP ${res.status}: ${res.body}`);
    }
    return { body: res.body, headers: res.headers };
  }

  postInvocationResponse(result, id) {
    return this.post(`/runtime/invocation/${encodeURIComponent(id)}/response`, safeStringify(result), {});
  }

  postInvocationError(error, id) {
    const response = toRapidResponse(error);
    const headers = { [ERROR_TYPE_HEADER]: headerValue(response.errorType) };
    const cause = xrayCause(error);
    if (cause) headers[XRAY_CAUSE_HEADER] = headerValue(cause);
    return this.post(`/runtime/invocation/${encodeURIComponent(id)}/error`, safeStringify(response), headers);
  }

  postInitError(error) {
    const response = toRapidResponse(error);
    return this.post('/runtime/init/error', safeStringify(response), {
      [ERROR_TYPE_HEADER]: headerValue(response.errorType),
    });
  }

  /** A chunked POST of a streamed response; returns the request and its completion. */
  streamResponse(id, contentType) {
    let req;
    const done = new Promise((resolve, reject) => {
      if (!this.agent) this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      req = http.request(
        {
          hostname: this.hostname,
          port: this.port,
          path: `${API_PREFIX}/runtime/invocation/${encodeURIComponent(id)}/response`,
          method: 'POST',
          agent: this.agent,
          headers: {
            'User-Agent': this.userAgent,
            'Content-Type': contentType,
            'Transfer-Encoding': 'chunked',
            'Lambda-Runtime-Function-Response-Mode': 'streaming',
            Trailer: `${ERROR_TYPE_HEADER}, ${ERROR_BODY_TRAILER}`,
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
    });
    return { req, done };
  }
}

// ---------------------------------------------------------------------------------------
// Loading the handler.
// ---------------------------------------------------------------------------------------

const HANDLER_STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HANDLER_HIGHWATERMARK = Symbol.for('aws.lambda.runtime.handler.streaming.highWaterMark');
const STREAM_RESPONSE = 'response';
const HTTP_INTEGRATION_CONTENT_TYPE = 'application/vnd.awslambda.http-integration-response';
const DEFAULT_STREAM_CONTENT_TYPE = 'application/octet-stream';

class HttpResponseStream {
  /** Prefix the stream with the HTTP status/headers prelude (function URLs). */
  static from(underlyingStream, prelude) {
    underlyingStream.setContentType(HTTP_INTEGRATION_CONTENT_TYPE);
    underlyingStream.write(JSON.stringify(prelude));
    underlyingStream.write(new Uint8Array(8)); // eight NUL bytes end the prelude
    return underlyingStream;
  }
}

function installAwsLambdaGlobal() {
  const flag = process.env.AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA;
  if (flag === '1' || flag === 'true') return;
  globalThis.awslambda = {
    streamifyResponse: (handler, options) => {
      handler[HANDLER_STREAMING] = STREAM_RESPONSE;
      if (typeof options?.highWaterMark === 'number') {
        handler[HANDLER_HIGHWATERMARK] = parseInt(options.highWaterMark, 10);
      }
      return handler;
    },
    HttpResponseStream,
  };
}

/** Lambda's NODE_PATH, with the layer folders for this Node major version. */
function setupNodePath(taskRoot) {
  const layerDir = `/opt/nodejs/node${process.versions.node.split('.')[0]}/node_modules`;
  const current = (process.env.NODE_PATH || '').split(':').filter(Boolean);
  let paths;
  if (current.length === 0) {
    paths = [layerDir, '/opt/nodejs/node_modules', '/var/runtime/node_modules', '/var/runtime', taskRoot];
  } else {
    paths = [...current];
    if (!paths.includes(layerDir)) {
      const at = paths.indexOf('/opt/nodejs/node_modules');
      paths.splice(at === -1 ? 0 : at, 0, layerDir);
    }
    if (!paths.includes(taskRoot)) paths.push(taskRoot);
  }
  process.env.NODE_PATH = paths.join(':');
  if (typeof Module._initPaths === 'function') Module._initPaths();
}

function hasTypeModule(folder) {
  // The nearest package.json decides; a node_modules folder or / ends the search.
  for (;;) {
    if (folder.endsWith('/node_modules')) return false;
    const pj = path.join(folder, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        const pkg = JSON.parse(fs.readFileSync(pj, 'utf8'));
        if (pkg) return pkg.type === 'module';
      } catch (e) {
        console.warn(`${pj} cannot be read, it will be ignored for ES module detection purposes.`, e);
        return false;
      }
    }
    const parent = path.dirname(folder);
    if (parent === folder) return false;
    folder = parent;
  }
}

function tryRequire(file) {
  return fs.existsSync(file) ? require(file) : undefined;
}

async function tryImport(file) {
  return fs.existsSync(file) ? await import(pathToFileURL(file).href) : undefined;
}

async function loadModule(appRoot, moduleRoot, moduleName) {
  const base = path.resolve(appRoot, moduleRoot, moduleName);
  const extensionless = tryRequire(base);
  if (extensionless) return extensionless;
  const typeModule = hasTypeModule(path.dirname(base));
  if (!typeModule) {
    const loaded = tryRequire(base + '.js');
    if (loaded) return loaded;
  }
  const loaded =
    (typeModule && (await tryImport(base + '.js'))) ||
    (await tryImport(base + '.mjs')) ||
    tryRequire(base + '.cjs');
  if (loaded) return loaded;
  return require(require.resolve(moduleName, { paths: [appRoot, moduleRoot] }));
}

async function loadHandler(appRoot, fullHandler) {
  if (fullHandler.includes('..')) {
    throw new MalformedHandlerName(
      `'${fullHandler}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const handlerString = path.basename(fullHandler);
  const moduleRoot = fullHandler.substring(0, fullHandler.indexOf(handlerString));
  const match = handlerString.match(/^([^.]*)\.(.*)$/);
  if (!match) throw new MalformedHandlerName('Bad handler');
  const [, moduleName, handlerPath] = match;

  installAwsLambdaGlobal();
  let app;
  try {
    app = await loadModule(appRoot, moduleRoot, moduleName);
  } catch (e) {
    if (e instanceof SyntaxError) throw new UserCodeSyntaxError(e);
    if (e?.code === 'MODULE_NOT_FOUND') throw new ImportModuleError(e);
    throw e;
  }
  const fn = handlerPath.split('.').reduce((obj, key) => obj && obj[key], app);
  if (!fn) throw new HandlerNotFound(`${fullHandler} is undefined or not exported`);
  if (typeof fn !== 'function') throw new HandlerNotFound(`${fullHandler} is not a function`);
  return fn;
}

function handlerMetadata(fn) {
  const streaming = fn[HANDLER_STREAMING];
  if (streaming !== undefined && streaming !== null && streaming !== false && streaming !== STREAM_RESPONSE) {
    throw new MalformedStreamingHandler('Only response streaming is supported.');
  }
  const hwm = parseInt(fn[HANDLER_HIGHWATERMARK], 10);
  return {
    streaming: streaming === STREAM_RESPONSE,
    highWaterMark: Number.isNaN(hwm) ? undefined : hwm,
    isAsync: fn.constructor?.name === 'AsyncFunction',
  };
}

// ---------------------------------------------------------------------------------------
// The invocation loop.
// ---------------------------------------------------------------------------------------

// The one 'beforeExit' action: what to do when the event loop empties.
let beforeExitAction = () => {};

function parseJsonHeader(value, name) {
  if (value === undefined || value === '') return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

function parseEvent(body) {
  // An invoke without payload delivers the empty object, as on Lambda.
  return body.trim() === '' ? {} : JSON.parse(body);
}

class Runtime {
  constructor(client, handler, errorCallbacks) {
    this.client = client;
    this.handler = handler;
    this.metadata = handlerMetadata(handler);
    this.errorCallbacks = errorCallbacks;
  }

  scheduleIteration() {
    setImmediate(() => {
      const once = this.metadata.streaming ? this.handleOnceStreaming() : this.handleOnce();
      once.catch((err) => {
        // Only a failure of the Runtime API itself gets here.
        process.stderr.write(`Unexpected Top Level Error: ${err}\n`);
        this.errorCallbacks.uncaughtException(err);
      });
    });
  }

  async nextInvocation() {
    const { body, headers } = await this.client.nextInvocation();
    const invokeId = headers['lambda-runtime-aws-request-id'];
    if (!invokeId) throw new Error('invocation id is missing or invalid');
    globalThis[REQUEST_ID_SYMBOL] = invokeId;
    globalThis[TENANT_ID_SYMBOL] = headers['lambda-runtime-aws-tenant-id'];
    if (headers['lambda-runtime-trace-id']) {
      process.env._X_AMZN_TRACE_ID = headers['lambda-runtime-trace-id'];
    } else {
      delete process.env._X_AMZN_TRACE_ID;
    }
    this.setErrorCallbacks(invokeId);
    return { body, headers, invokeId };
  }

  /** The fields of the context that come from the environment and the invoke headers. */
  static contextData(headers) {
    const deadline = parseInt(headers['lambda-runtime-deadline-ms'], 10) || 0;
    return {
      functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
      clientContext: parseJsonHeader(headers['lambda-runtime-client-context'], 'ClientContext'),
      identity: parseJsonHeader(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
      invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
      awsRequestId: headers['lambda-runtime-aws-request-id'],
      tenantId: headers['lambda-runtime-aws-tenant-id'],
      getRemainingTimeInMillis: () => deadline - Date.now(),
    };
  }

  async handleOnce() {
    const { body, headers, invokeId } = await this.nextInvocation();
    const [callback, callbackContext, markCompleted] = buildCallbackContext(
      this.client,
      invokeId,
      () => this.scheduleIteration(),
    );
    try {
      this.setDefaultExitListener(invokeId, markCompleted);
      const context = Object.assign(callbackContext, Runtime.contextData(headers));
      const result = this.handler(parseEvent(body), context, callback);
      if (isPromise(result)) {
        result.then(callbackContext.succeed, callbackContext.fail).catch(callbackContext.fail);
      }
    } catch (err) {
      callback(err);
    }
  }

  async handleOnceStreaming() {
    const { body, headers, invokeId } = await this.nextInvocation();
    let finished = false;
    const scheduleNext = () => {
      if (!finished) {
        finished = true;
        this.scheduleIteration();
      }
    };
    beforeExitAction = scheduleNext;
    const stream = new ResponseStream(this.client, invokeId, this.metadata.highWaterMark);
    const fail = async (err) => {
      logError('Invoke Error', err);
      await stream.fail(err);
      scheduleNext();
    };
    try {
      const context = Object.assign(
        { callbackWaitsForEmptyEventLoop: true },
        Runtime.contextData(headers),
      );
      const result = this.handler(parseEvent(body), stream, context);
      if (!isPromise(result)) {
        await fail(new Error('Streaming does not support non-async handlers.'));
        return;
      }
      const value = await result;
      if (value !== undefined) console.warn('Streaming handlers ignore return values.');
      if (!stream.writableFinished && !stream.writableEnded) {
        await fail(new Error('Response stream is not finished.'));
        return;
      }
      await stream.completion();
      scheduleNext();
    } catch (err) {
      await fail(err);
    }
  }

  setErrorCallbacks(invokeId) {
    this.errorCallbacks.uncaughtException = (error) => {
      this.client.postInvocationError(error, invokeId).finally(() => process.exit(129));
    };
    this.errorCallbacks.unhandledRejection = (error) => {
      this.client.postInvocationError(error, invokeId).finally(() => process.exit(128));
    };
  }

  /** When the event loop empties before the handler answered (no callback, no promise). */
  setDefaultExitListener(invokeId, markCompleted) {
    beforeExitAction = () => {
      beforeExitAction = () => {};
      markCompleted();
      const next = () => this.scheduleIteration();
      if (this.metadata.isAsync) {
        const error = new NodeJsExit();
        logError('Invoke Error', error);
        this.client.postInvocationError(error, invokeId).then(next, (e) => this.errorCallbacks.uncaughtException(e));
      } else {
        this.client.postInvocationResponse(null, invokeId).then(next, (e) => this.errorCallbacks.uncaughtException(e));
      }
    };
  }
}

function isPromise(obj) {
  return obj && typeof obj.then === 'function';
}

/**
 * The callback, the callback half of the context (callbackWaitsForEmptyEventLoop,
 * done/succeed/fail) and a function that marks the invocation answered. Only the first
 * call of any of them counts, as on Lambda.
 */
function buildCallbackContext(client, id, scheduleNext) {
  let answered = false;
  const onFailure = (e) => {
    process.stderr.write(`Runtime API request failed: ${e}\n`);
    process.exit(129);
  };
  const postError = (err) => {
    logError('Invoke Error', err);
    client.postInvocationError(err, id).then(scheduleNext, onFailure);
  };
  const complete = (result) => {
    if (answered) {
      console.error(
        'Invocation has already been reported as done. Cannot call complete more than once per invocation.',
      );
      return;
    }
    answered = true;
    let text;
    try {
      text = safeStringify(result);
    } catch {
      postError(new Error('Unable to stringify response body'));
      return;
    }
    client
      .post(`/runtime/invocation/${encodeURIComponent(id)}/response`, text, {})
      .then(scheduleNext, onFailure);
  };

  let waitForEmptyEventLoop = true;
  const callback = (err, result) => {
    beforeExitAction = () => {};
    if (err !== undefined && err !== null) {
      postError(err);
    } else if (!waitForEmptyEventLoop) {
      complete(result);
    } else {
      beforeExitAction = () => {
        beforeExitAction = () => {};
        setImmediate(() => complete(result));
      };
    }
  };
  const done = (err, result) => {
    beforeExitAction = () => {};
    if (err !== undefined && err !== null) postError(err);
    else complete(result);
  };

  let finished = false;
  const once =
    (fn) =>
    (...args) => {
      if (!finished) {
        fn(...args);
        finished = true;
      }
    };
  const callbackContext = {
    get callbackWaitsForEmptyEventLoop() {
      return waitForEmptyEventLoop;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waitForEmptyEventLoop = value;
    },
    succeed: once((result) => done(null, result)),
    fail: once((err) => (err === undefined || err === null ? done('handled') : done(err, null))),
    done: once(done),
  };
  return [once(callback), callbackContext, () => (answered = true)];
}

/** The writable a streaming handler gets; bytes go to a chunked POST of the response. */
class ResponseStream extends Writable {
  constructor(client, id, highWaterMark) {
    super(highWaterMark ? { highWaterMark } : {});
    this.client = client;
    this.id = id;
    this.contentType = DEFAULT_STREAM_CONTENT_TYPE;
    this.post = null;
  }

  setContentType(contentType) {
    if (this.post) throw new Error('Content type cannot be set after the first write.');
    this.contentType = contentType;
  }

  open() {
    if (!this.post) this.post = this.client.streamResponse(this.id, this.contentType);
    return this.post;
  }

  _write(chunk, encoding, cb) {
    this.open().req.write(chunk, encoding, cb);
  }

  _final(cb) {
    this.open().req.end(cb);
  }

  completion() {
    return this.open().done;
  }

  async fail(err) {
    if (!this.post) {
      // Nothing was streamed yet: an ordinary error response.
      await this.client.postInvocationError(err, this.id);
      return;
    }
    if (!this.post.req.writableEnded) {
      // Mid-stream: the error travels in the trailers of the chunked body.
      const response = toRapidResponse(err);
      this.post.req.addTrailers({
        [ERROR_TYPE_HEADER]: headerValue(response.errorType),
        [ERROR_BODY_TRAILER]: Buffer.from(safeStringify(response)).toString('base64'),
      });
      this.post.req.end();
    }
    await this.post.done.catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------
// Start.
// ---------------------------------------------------------------------------------------

async function main() {
  JSON_LOGS = (process.env.AWS_LAMBDA_LOG_FORMAT || '').toUpperCase() === 'JSON';
  // node creates process.stderr's handle on first use, and destroying any socket uses it
  // (net's Socket._destroy compares itself with it), as warmUp does: create it here in every
  // runtime, so one started ahead and one started with its function have the same handles.
  void process.stderr;
  patchConsole();
  const address = process.env.AWS_LAMBDA_RUNTIME_API;
  if (!address) {
    process.stderr.write('AWS_LAMBDA_RUNTIME_API is not set\n');
    process.exit(2);
  }
  const client = new RuntimeClient(address);
  const taskRoot = process.env.LAMBDA_TASK_ROOT || '/var/task';

  const errorCallbacks = {
    uncaughtException: (error) => {
      client.postInitError(error).finally(() => process.exit(129));
    },
    unhandledRejection: (error) => {
      client.postInitError(error).finally(() => process.exit(128));
    },
  };
  process.on('uncaughtException', (error) => {
    logError('Uncaught Exception', error);
    errorCallbacks.uncaughtException(error);
  });
  process.on('unhandledRejection', (reason, promise) => {
    const error = new UnhandledPromiseRejection(reason, promise);
    logError('Unhandled Promise Rejection', error);
    errorCallbacks.unhandledRejection(error);
  });
  process.on('beforeExit', () => beforeExitAction());

  setupNodePath(taskRoot);
  let handler;
  try {
    handler = await loadHandler(taskRoot, process.env._HANDLER || '');
    const runtime = new Runtime(client, handler, errorCallbacks);
    runtime.scheduleIteration();
  } catch (error) {
    logError('Uncaught Exception', error);
    errorCallbacks.uncaughtException(error);
  }
}

/**
 * What a runtime started ahead does while it waits for its function: node compiles its own
 * JavaScript (sockets, streams, the module loaders) lazily, at first use, which cost a cold
 * start about ten milliseconds between the assignment and the first `GET /next`. This runs
 * those paths once, ahead: one request through the runtime's own client to a throwaway
 * server on the sandbox's loopback, one `require` and one `import` of a file of this
 * directory. It leaves nothing a function could see: the server and connection are closed,
 * the CommonJS cache entry is removed, and the environment is not read.
 */
async function warmUp() {
  const server = net.createServer((socket) => {
    socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}'));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  try {
    const client = new RuntimeClient(`127.0.0.1:${server.address().port}`);
    await client.request('GET', '/warm-up');
    for (const conn of client.idle) conn.destroy();
  } finally {
    server.close();
  }
  const dir = path.dirname(new URL(import.meta.url).pathname);
  const cjs = path.join(dir, 'warm-up.cjs');
  if (fs.existsSync(cjs)) {
    require(cjs);
    delete require.cache[cjs];
  }
  const esm = path.join(dir, 'warm-up.mjs');
  if (fs.existsSync(esm)) await import(pathToFileURL(esm).href);
}

if (process.env._RUNTIME_ASSIGNMENT_FD) {
  try {
    await warmUp();
  } catch {
    // Only speed is lost.
  }
}
awaitAssignment();
main();
