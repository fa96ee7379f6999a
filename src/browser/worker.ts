/**
 * The Web Worker that runs ONNX Runtime (built to vggface-worker.js beside vggface.js), so inference never holds
 * the page's thread, and the pixel work with it (pixels.ts: decoding, resampling, detection, aligned crops). One
 * worker serves every session opened with the same runtime options (onnxruntime-web's settings are global to its
 * instance). Messages: open (the model's bytes, transferred), run (input tensors, transferred; outputs transferred
 * back), square and faces (an image in, crops and faces out), close. Every request gets exactly one answer, an
 * error included (a VggFaceError keeps its code and input).
 */
import { serializeError } from '../util/serialize-error.js';
import { facesOp, squareOp } from './pixels.js';
import { openSession, type Session } from './session.js';
import type { WorkerReply, WorkerRequest } from './engine.js';

interface WorkerScope {
  onmessage: ((e: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: WorkerReply, transfer?: Transferable[]): void;
}
const scope = globalThis as unknown as WorkerScope;
const sessions = new Map<number, Session>();
let nextSession = 1;

/** The array itself when it owns its whole (non-shared) buffer, so it can be transferred; else a copy. */
function transferable(a: Float32Array): Float32Array {
  const owned = a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.buffer instanceof ArrayBuffer;
  return owned ? a : a.slice();
}

function session(sid: number): Session {
  const s = sessions.get(sid);
  if (!s) throw new Error('this session was closed');
  return s;
}

scope.onmessage = async ({ data: req }) => {
  try {
    if (req.type === 'open') {
      const s = await openSession(new Uint8Array(req.model), req.options);
      const sid = nextSession++;
      sessions.set(sid, s);
      scope.postMessage({
        id: req.id,
        sid,
        inputNames: s.inputNames,
        outputNames: s.outputNames,
        backend: s.backend,
        threads: s.threads,
      });
    } else if (req.type === 'run') {
      const out = await session(req.sid).run(req.feeds, req.outputs);
      const transfer: Transferable[] = [];
      for (const t of Object.values(out)) {
        t.data = transferable(t.data);
        transfer.push(t.data.buffer as ArrayBuffer);
      }
      scope.postMessage({ id: req.id, outputs: out }, transfer);
    } else if (req.type === 'square') {
      const image = await squareOp(req.input, req.label, req.size, req.fit, req.maxPixels);
      scope.postMessage({ id: req.id, image }, [image.data.buffer as ArrayBuffer]);
    } else if (req.type === 'faces') {
      const s = session(req.sid);
      const faces = await facesOp(
        (feeds, outputs) => s.run(feeds, outputs),
        req.input,
        req.label,
        req.detect,
        req.align,
      );
      scope.postMessage(
        { id: req.id, faces },
        faces.flatMap((f) => (f.crop ? [f.crop.data.buffer as ArrayBuffer] : [])),
      );
    } else {
      const s = sessions.get(req.sid);
      sessions.delete(req.sid);
      await s?.close();
      scope.postMessage({ id: req.id });
    }
  } catch (err) {
    scope.postMessage({ id: req.id, error: serializeError(err) });
  }
};
