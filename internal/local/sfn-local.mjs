// Runs executions of an Amazon States Language definition with
// aws-local-stepfunctions (pinned in package.json), for keyrotor's local
// runs. Reads a job file (argv[2]):
//   {definition, input, context, waitTimeOverrides, retryIntervalOverrides,
//    mapRunURL, resultWriterURL, startExecutionURL, startExecutionStates, startAt}
// and writes one JSON line per engine event to stdout, then a final
//   {"type":"Result","status":"SUCCEEDED"|"FAILED", output|error+cause}.
// With argv[2] "--serve" it is a pool: it reads "<id> <job file>" lines
// from stdin and runs each job at once, side by side in this one process
// (the engine is loaded once), every line it writes carrying "job": <id>;
// it exits when stdin ends and every job has ended. A local run's key
// executions (one per key's grace period) run so, not a process each.
// Lambda tasks go to AWS_ENDPOINT_URL_LAMBDA (the local Lambda server).
//
// The engine runs a DISTRIBUTED Map inline and ignores ItemReader and
// ResultWriter. keyrotor's RotateEachUser map reads its items from S3 with
// ItemReader and writes its children's results to S3 with ResultWriter, so
// this script loads the engine with hooks in the Map state (MAP_HOOKS): a
// map with an ItemReader or a ResultWriter is a "map run" the Go runner
// serves (job.mapRunURL): it reads the items from the emulated S3 with the
// AWS SDK, as Step Functions would; it writes the children's results there
// as ResultWriter does (manifest.json and SUCCEEDED_n.json / FAILED_n.json),
// and the state's result is the manifest reference, not the children's
// outputs. When the runner redrives a failed execution (job.startAt), it
// names the items of the failed map run to run again and, for a child that
// failed or was cut short, the state to restart it at with that state's
// recorded input, as RedriveExecution redrives a Map Run's failed children.
// A child that fails still fails the map at once (the engine ignores
// ToleratedFailurePercentage), aborting the children still running.
import { readFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const enginePath = require.resolve('aws-local-stepfunctions');
// [anchor, replacement] pairs in MapStateAction (execute and processItem).
// this.__kr is the map run the runner serves (null for a plain inline map).
const MAP_HOOKS = [
  ['let items = input;',
    'let items = input; this.__kr = await globalThis.__keyrotorMapRun(this.stateName, state, input, context); if (this.__kr?.items) items = this.__kr.items;'],
  ['limit(() => this.processItem(iteratorStateMachine, item, input, context, i, options))',
    'limit(() => this.processItem(iteratorStateMachine, item, input, context, this.__kr ? this.__kr.index(i) : i, options))'],
  ['const execution = stateMachine.run(paramValue ?? item, options.runOptions);',
    'const execution = this.__kr ? this.__kr.run(stateMachine, index, paramValue ?? item, options) : stateMachine.run(paramValue ?? item, options.runOptions);'],
  ['const result = await Promise.all(processedItemsPromise);',
    'const result = await Promise.all(processedItemsPromise); if (this.__kr?.write) return this.buildExecutionResult(await this.__kr.write());'],
];

// Step Functions names a Lambda service error "Lambda.<exception>" (for a
// function at its reserved concurrency: Lambda.TooManyRequestsException);
// the engine passes the SDK's exception name through bare, so Retry lists
// would never match. This hook adds the prefix, as Step Functions does.
const INVOKE_ANCHOR = 'const invocationResult = await this.client.send(invokeCommand);';
const INVOKE_HOOK = 'let invocationResult; try { invocationResult = await this.client.send(invokeCommand); } catch (e) { if (e?.$fault && e.name && !e.name.startsWith("Lambda.")) throw new LambdaInvocationError("Lambda." + e.name, e.message, e); throw e; }';

function loadEngine() {
  const src = readFileSync(enginePath, 'utf8');
  let patched = src;
  for (const [a, hook] of [...MAP_HOOKS, [INVOKE_ANCHOR, INVOKE_HOOK]]) {
    if (src.split(a).length !== 2) {
      throw new Error(`aws-local-stepfunctions changed: the anchor "${a}" was not found exactly once in ${enginePath}; keyrotor pins version 3.0.0 (package.json)`);
    }
    patched = patched.replace(a, () => hook);
  }
  const m = new Module(enginePath, null);
  m.filename = enginePath;
  m.paths = Module._nodeModulePaths(path.dirname(enginePath));
  m._compile(patched, enginePath);
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

// jobs are the jobs running, by their execution's id (the map hook finds
// its job by the execution's context).
const jobs = new Map();
// (A pool runs the grace state machine, which has no such map; alone, the
// one job is the job.)
const jobOf = (context) => jobs.get(context?.Execution?.Id ?? '') ?? [...jobs.values()][0];

const post = async (url, body) => {
  const resp = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await resp.text();
  if (!resp.ok) {
    let e = {};
    try { e = JSON.parse(text); } catch { e = { cause: text }; }
    const err = new Error(e.cause ?? `HTTP ${resp.status}`);
    err.name = e.error ?? 'States.Runtime';
    throw err;
  }
  return JSON.parse(text);
};

// StateMachine is the engine's class, set once the engine is loaded.
let StateMachineClass;

// __keyrotorMapRun starts a map run for a Map state with an ItemReader or a
// ResultWriter (else null: the engine's own inline map). The runner answers
// {items, index, redo}: the items (read with ItemReader; on a redrive only
// those to run again), each one's index in the map run, and for a child to
// restart mid-way {startAt, input}.
globalThis.__keyrotorMapRun = async (stateName, state, input, context) => {
  if (!state.ItemReader && !state.ResultWriter) return null;
  const job = jobOf(context);
  const req = { state: stateName, execution: job.context?.Execution?.Id ?? '' };
  if (state.ItemReader) {
    const r = state.ItemReader;
    if (r.Resource !== 'arn:aws:states:::s3:getObject') {
      throw new Error(`ItemReader resource ${r.Resource} is not supported locally`);
    }
    const type = r.ReaderConfig?.InputType ?? 'JSON';
    if (type !== 'JSON') throw new Error(`ItemReader InputType ${type} is not supported locally`);
    const p = resolveParams(r.Parameters, input, context);
    req.itemReader = { bucket: p.Bucket, key: p.Key };
  }
  let writer = null;
  if (state.ResultWriter) {
    const w = state.ResultWriter;
    if (w.Resource !== 'arn:aws:states:::s3:putObject') {
      throw new Error(`ResultWriter resource ${w.Resource} is not supported locally`);
    }
    if (w.WriterConfig) throw new Error('ResultWriter WriterConfig is not supported locally');
    const p = resolveParams(w.Parameters, input, context);
    writer = { bucket: p.Bucket, prefix: p.Prefix ?? '' };
  }
  const run = await post(job.mapRunURL, req);
  const children = new Map();
  return {
    items: run.items ?? undefined,
    index: (i) => (run.index ? run.index[i] : i),
    // run starts child index: from its start, or on a redrive at the
    // state it failed in, with that state's recorded input; and notes
    // its outcome for the ResultWriter.
    run(sm, index, childInput, options) {
      const redo = run.redo?.[index];
      const execution = redo
        ? new StateMachineClass({ ...(state.ItemProcessor ?? state.Iterator), StartAt: redo.startAt },
          { ...options.stateMachineOptions, validationOptions: { noValidate: true } }).run(redo.input, options.runOptions)
        : sm.run(childInput, options.runOptions);
      const rec = { index, input: childInput, startDate: new Date().toISOString() };
      children.set(index, rec);
      const result = execution.result.then((out) => {
        Object.assign(rec, { status: 'SUCCEEDED', output: out, stopDate: new Date().toISOString() });
        return out;
      }, (e) => {
        const c = e?.cause ?? e;
        Object.assign(rec, { status: 'FAILED', error: c?.name ?? 'Error', cause: c?.message ?? String(c), stopDate: new Date().toISOString() });
        throw e;
      });
      return { ...execution, result };
    },
    // write hands every child's result to the runner, which writes the
    // ResultWriter files and answers the state's result.
    write: writer && (() => post(job.resultWriterURL, {
      state: stateName, execution: req.execution, bucket: writer.bucket, prefix: writer.prefix,
      children: [...children.values()].sort((a, b) => a.index - b.index),
    })),
  };
};

const write = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// Task states whose resource is states:startExecution (StartGracePeriod)
// start another local execution through the Go runner, which answers as
// Step Functions' StartExecution does; a name already used fails with
// StepFunctions.ExecutionAlreadyExistsException, which the definition
// catches. The engine hands the handler the state's effective input (its
// Parameters applied): {Input, StateMachineArn, Name}.
function startExecutionHandlers(job) {
  const handlers = {};
  for (const name of job.startExecutionStates ?? []) {
    handlers[name] = async (params) => {
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
        err.name = body.error ?? 'StepFunctions.AWSStepFunctionsException';
        throw err;
      }
      return body;
    };
  }
  return handlers;
}

const { StateMachine } = loadEngine();
StateMachineClass = StateMachine;

// runJob runs one job to its end, emitting its events and its Result;
// it reports whether the execution succeeded. A job the engine refuses
// (its definition) throws, or in a pool ends like a failed execution.
async function runJob(job, emit, pooled) {
  jobs.set(job.context?.Execution?.Id ?? '', job);
  try {
    // A redrive restarts the execution at its failed state (job.startAt)
    // with that state's recorded input (job.input), as RedriveExecution
    // does. The definition is validated as a whole; a redrive's copy
    // starting at a later state leaves the earlier ones unreachable, which
    // is not an error.
    const definition = job.startAt ? { ...job.definition, StartAt: job.startAt } : job.definition;
    const validated = new StateMachine(job.definition, { validationOptions: { checkPaths: true, checkArn: false } });
    const sm = job.startAt ? new StateMachine(definition, { validationOptions: { noValidate: true } }) : validated;
    const execution = sm.run(job.input ?? {}, {
      overrides: {
        waitTimeOverrides: job.waitTimeOverrides ?? {},
        retryIntervalOverrides: job.retryIntervalOverrides ?? {},
        taskResourceLocalHandlers: startExecutionHandlers(job),
      },
      context: job.context ?? {},
    });
    const pump = (async () => {
      for await (const ev of execution.eventLogs) emit(ev);
    })();
    try {
      const output = await execution.result;
      await pump.catch(() => {});
      emit({ type: 'Result', status: 'SUCCEEDED', output });
      return true;
    } catch (e) {
      await pump.catch(() => {});
      const cause = e?.cause ?? e;
      emit({ type: 'Result', status: 'FAILED', error: cause?.name ?? 'Error', cause: cause?.message ?? String(cause) });
      return false;
    }
  } catch (e) {
    if (!pooled) throw e;
    emit({ type: 'Result', status: 'FAILED', error: e?.name ?? 'Error', cause: e?.message ?? String(e) });
    return false;
  } finally {
    jobs.delete(job.context?.Execution?.Id ?? '');
  }
}

let code = 0;
if (process.argv[2] === '--serve') {
  const { createInterface } = await import('node:readline');
  const running = [];
  for await (const line of createInterface({ input: process.stdin })) {
    const sp = line.indexOf(' ');
    if (sp < 0) continue;
    const id = Number(line.slice(0, sp));
    const file = line.slice(sp + 1);
    running.push((async () => {
      let job;
      try {
        job = JSON.parse(readFileSync(file, 'utf8'));
      } catch (e) {
        write({ job: id, type: 'Result', status: 'FAILED', error: 'States.Runtime', cause: `read job ${file}: ${e?.message ?? e}` });
        return;
      }
      await runJob(job, (ev) => write({ ...ev, job: id }), true);
    })());
  }
  await Promise.all(running);
} else {
  const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  code = (await runJob(job, write, false)) ? 0 : 1;
}
// Exit only once stdout has drained: process.exit can cut a pipe short.
process.stdout.write('', () => process.exit(code));
