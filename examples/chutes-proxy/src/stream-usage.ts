/**
 * Reads the token usage out of an OpenAI-compatible SSE stream while it is piped to the buyer,
 * unchanged. With `stream_options: { include_usage: true }` the upstream sends one last chunk
 * `data: {"choices":[],"usage":{"prompt_tokens":…,"completion_tokens":…}}` before `data: [DONE]`;
 * some upstreams (vLLM's `continuous_usage_stats`) put a running `usage` on every chunk. Either way
 * the last `usage` seen is the stream's.
 */
import { Transform, type TransformCallback } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { parseUsage, type Usage } from "./pricing.js";

/**
 * An event longer than this is not parsed (a usage chunk is ~200 bytes; a content chunk with a
 * usage on it stays far below): the scanner's memory is bounded whatever the upstream sends.
 */
export const MAX_EVENT_CHARS = 256 * 1024;

/** SSE events end with a blank line; lines end with \n, \r\n or \r. */
const EVENT_END = /\r\n\r\n|\n\n|\r\r/;

export class StreamUsage {
  /** The last valid `usage` seen so far. */
  usage: Usage | undefined;
  /** True once the upstream's stream ended normally (not cut short by an error or an abort). */
  complete = false;
  private pending = "";
  /** Inside an event that outgrew MAX_EVENT_CHARS: drop text until its end. */
  private skipping = false;

  push(text: string): void {
    this.pending += text;
    for (;;) {
      const end = EVENT_END.exec(this.pending);
      if (!end) break;
      const event = this.pending.slice(0, end.index);
      this.pending = this.pending.slice(end.index + end[0].length);
      if (this.skipping) this.skipping = false;
      else this.readEvent(event);
    }
    if (this.pending.length > MAX_EVENT_CHARS) {
      this.pending = "";
      this.skipping = true;
    }
  }

  end(): void {
    if (!this.skipping && this.pending.trim() !== "") this.readEvent(this.pending);
    this.pending = "";
    this.complete = true;
  }

  private readEvent(event: string): void {
    const data = event
      .split(/\r\n|\n|\r/)
      .filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(line.startsWith("data: ") ? 6 : 5))
      .join("\n");
    if (data === "" || data === "[DONE]") return;
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      return; // not JSON: passed through, not ours to judge
    }
    const usage = parseUsage((chunk as { usage?: unknown } | null)?.usage);
    if (usage) this.usage = usage;
  }
}

/** A pass-through stream that feeds every byte to `meter` and marks it complete when the source ends. */
export function usageTap(meter: StreamUsage): Transform {
  const decoder = new StringDecoder("utf8");
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      meter.push(decoder.write(chunk));
      callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      meter.push(decoder.end());
      meter.end();
      callback();
    },
  });
}
