// A waPC guest written the way @wapc/as-guest's own example is, with
// nothing Atoll-specific.
import { register, handleCall, hostCall, handleAbort, consoleLog, Result } from "@wapc/as-guest";

register("ping", function (payload: ArrayBuffer): Result<ArrayBuffer> {
  return Result.ok<ArrayBuffer>(payload);
});

register("shout", function (payload: ArrayBuffer): Result<ArrayBuffer> {
  consoleLog("shouting");
  return Result.ok<ArrayBuffer>(String.UTF8.encode(String.UTF8.decode(payload).toUpperCase() + "!"));
});

// Asks the host for a request header; the answer is MessagePack.
register("agent", function (payload: ArrayBuffer): Result<ArrayBuffer> {
  return hostCall("", "request", "header", String.UTF8.encode("x-agent"));
});

register("fail", function (payload: ArrayBuffer): Result<ArrayBuffer> {
  return Result.error<ArrayBuffer>(new Error("assemblyscript says no"));
});

export function __guest_call(operation_size: usize, payload_size: usize): bool {
  return handleCall(operation_size, payload_size);
}

function abort(message: string | null, fileName: string | null, lineNumber: u32, columnNumber: u32): void {
  handleAbort(message, fileName, lineNumber, columnNumber);
}
