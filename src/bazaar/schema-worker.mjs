/**
 * Worker thread of schema-validator.ts: validates a Bazaar extension's `info` against its own JSON
 * Schema (draft 2020-12, Ajv). The schema is the payer's input — its `pattern`s are regular
 * expressions the payer wrote — so this runs off the main thread, where the parent can stop it when
 * it takes too long. Plain JavaScript, started without the parent's loader hooks; imports only ajv.
 *
 * Message in: { id, info, schema } (JSON texts). Message out: { id, valid, errors } (at most 3
 * messages); { ready: true } once, first, when Ajv is loaded.
 */
import { parentPort } from "node:worker_threads";
import Ajv2020 from "ajv/dist/2020.js";

// One instance, emptied after each job: the meta-schemas stay compiled, the payer's schema does not.
// No formats, no $data, no remote loading; strict off, because the SDKs' schemas use annotations Ajv's
// strict mode refuses.
const ajv = new Ajv2020({ strict: false, allErrors: false, validateFormats: false, logger: false });

parentPort.on("message", ({ id, info, schema }) => {
  try {
    const validate = ajv.compile(JSON.parse(schema));
    const valid = validate(JSON.parse(info)) === true;
    const errors = valid ? [] : (validate.errors ?? []).slice(0, 3).map((error) => `${error.instancePath || "(root)"} ${error.message ?? "is invalid"}`);
    parentPort.postMessage({ id, valid, errors });
  } catch (error) {
    parentPort.postMessage({ id, valid: false, errors: [`schema does not compile: ${error instanceof Error ? error.message : String(error)}`] });
  } finally {
    ajv.removeSchema();
  }
});

parentPort.postMessage({ ready: true });
