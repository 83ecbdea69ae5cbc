// Runs one execution of an Amazon States Language definition with
// aws-local-stepfunctions (pinned in package.json), for keyrotor's local
// runs. Reads a job file (argv[2]):
//   {definition, input, context, waitTimeOverrides, retryIntervalOverrides, itemReaderURL}
// and writes one JSON line per engine event to stdout, then a final
//   {"type":"Result","status":"SUCCEEDED"|"FAILED", output|error+cause}.
// Lambda tasks go to AWS_ENDPOINT_URL_LAMBDA (the local Lambda server).
//
// The engine runs a DISTRIBUTED Map inline and ignores ItemReader. keyrotor's
// RotateEachUser map reads its items from S3 with ItemReader, so this script
// loads the engine with one hook added where the Map state takes its items:
// when the state has an S3 ItemReader, the items are read from the emulated
// S3, as Step Functions would read them, through the Go runner
// (job.itemReaderURL), which reads the object with the AWS SDK.
import { readFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const enginePath = require.resolve('aws-local-stepfunctions');
const ANCHOR = 'let items = input;';
const HOOK = 'let items = (state.ItemReader && globalThis.__keyrotorReadItems) ? await globalThis.__keyrotorReadItems(state, input, context) : input;';

// Step Functions names a Lambda service error "Lambda.<exception>" (for a
// function at its reserved concurrency: Lambda.TooManyRequestsException);
// the engine passes the SDK's exception name through bare, so Retry lists
// would never match. This hook adds the prefix, as Step Functions does.
const INVOKE_ANCHOR = 'const invocationResult = await this.client.send(invokeCommand);';
const INVOKE_HOOK = 'let invocationResult; try { invocationResult = await this.client.send(invokeCommand); } catch (e) { if (e?.$fault && e.name && !e.name.startsWith("Lambda.")) throw new LambdaInvocationError("Lambda." + e.name, e.message, e); throw e; }';

function loadEngine() {
  const src = readFileSync(enginePath, 'utf8');
  for (const a of [ANCHOR, INVOKE_ANCHOR]) {
    if (src.split(a).length !== 2) {
      throw new Error(`aws-local-stepfunctions changed: the anchor "${a}" was not found exactly once in ${enginePath}; keyrotor pins version 3.0.0 (package.json)`);
    }
  }
  const m = new Module(enginePath, null);
  m.filename = enginePath;
  m.paths = Module._nodeModulePaths(path.dirname(enginePath));
  m._compile(src.replace(ANCHOR, HOOK).replace(INVOKE_ANCHOR, INVOKE_HOOK), enginePath);
  return m.exports;
}

const { JSONPath } = require('jsonpath-plus');

function resolveParams(params, input, context) {
  const out = {};
  for (const [k, v] of Object.entries(params ?? {})) {
    if (k.endsWith('.$')) {
      if (typeof v !== 'string' || !v.startsWith('$')) {
        throw new Error(`ItemReader parameter ${k}: only paths are supported locally, got ${JSON.stringify(v)}`);
      }
      const json = v.startsWith('$$') ? context : input;
      const p = v.startsWith('$$') ? v.slice(1) : v;
      out[k.slice(0, -2)] = JSONPath({ path: p, json, wrap: false });
    } else {
      out[k] = v;
    }
  }
  return out;
}

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));

globalThis.__keyrotorReadItems = async (state, input, context) => {
  const r = state.ItemReader;
  if (r.Resource !== 'arn:aws:states:::s3:getObject') {
    throw new Error(`ItemReader resource ${r.Resource} is not supported locally`);
  }
  const type = r.ReaderConfig?.InputType ?? 'JSON';
  if (type !== 'JSON') throw new Error(`ItemReader InputType ${type} is not supported locally`);
  const p = resolveParams(r.Parameters, input, context);
  const url = `${job.itemReaderURL}?bucket=${encodeURIComponent(p.Bucket)}&key=${encodeURIComponent(p.Key)}`;
  const resp = await fetch(url);
  if (!resp.ok) {
    const err = new Error(`ItemReader could not read s3://${p.Bucket}/${p.Key}: HTTP ${resp.status}`);
    err.name = 'States.ItemReaderFailed';
    throw err;
  }
  const items = JSON.parse(await resp.text());
  if (!Array.isArray(items)) throw new Error(`ItemReader: s3://${p.Bucket}/${p.Key} is not a JSON array`);
  return items;
};

const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// Task states whose resource is states:startExecution (StartGracePeriod)
// start another local execution through the Go runner, which answers as
// Step Functions' StartExecution does; a name already used fails with
// StepFunctions.ExecutionAlreadyExistsException, which the definition
// catches. The engine hands the handler the state's effective input (its
// Parameters applied): {Input, StateMachineArn, Name}.
const taskResourceLocalHandlers = {};
for (const name of job.startExecutionStates ?? []) {
  taskResourceLocalHandlers[name] = async (params) => {
    let input = params.Input ?? {};
    if (typeof input === 'string') input = JSON.parse(input);
    const resp = await fetch(job.startExecutionURL, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: params.Name, input }),
    });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      const err = new Error(body.cause ?? `StartExecution failed: HTTP ${resp.status}`);
      err.name = body.error ?? 'StepFunctions.StepFunctionsException';
      throw err;
    }
    return body;
  };
}

const { StateMachine } = loadEngine();
const sm = new StateMachine(job.definition, { validationOptions: { checkPaths: true, checkArn: false } });
const execution = sm.run(job.input ?? {}, {
  overrides: {
    waitTimeOverrides: job.waitTimeOverrides ?? {},
    retryIntervalOverrides: job.retryIntervalOverrides ?? {},
    taskResourceLocalHandlers,
  },
  context: job.context ?? {},
});

const pump = (async () => {
  for await (const ev of execution.eventLogs) emit(ev);
})();

let code = 0;
try {
  const output = await execution.result;
  await pump.catch(() => {});
  emit({ type: 'Result', status: 'SUCCEEDED', output });
} catch (e) {
  await pump.catch(() => {});
  const cause = e?.cause ?? e;
  emit({ type: 'Result', status: 'FAILED', error: cause?.name ?? 'Error', cause: cause?.message ?? String(cause) });
  code = 1;
}
// Exit only once stdout has drained: process.exit can cut a pipe short.
process.stdout.write('', () => process.exit(code));
