/* A Server-Sent Events parser for streams read with fetch().
 *
 * The browser's EventSource cannot send X-Auth-Token or an SDK-HMAC-SHA256
 * signature, so the console reads text/event-stream through fetch() and a
 * ReadableStream and parses it here, following the WHATWG rules: lines end
 * in CRLF, LF or CR (a CR at the end of one chunk and an LF at the start of
 * the next are one line end), `field: value` with one optional space after
 * the colon, `data` lines joined with "\n", a blank line dispatches, a line
 * starting with ":" is a comment. Chunks may cut anywhere, even inside a
 * UTF-8 character: the decoder keeps the partial bytes for the next one.
 */
(function (global) {
  "use strict";

  /* new Parser(onEvent, onComment): onEvent({type, data, id}) per dispatched event, onComment(text) per comment line. */
  function Parser(onEvent, onComment) {
    this.onEvent = onEvent;
    this.onComment = onComment || function () {};
    this.decoder = new TextDecoder("utf-8");
    this.buffer = "";
    this.afterCR = false; // the last chunk ended in CR: an LF opening the next one belongs to it
    this.reset();
    this.lastEventId = "";
  }

  Parser.prototype.reset = function () {
    this.type = "";
    this.data = [];
    this.hasData = false;
  };

  /* Feed bytes (Uint8Array) or text; complete events are dispatched at once. */
  Parser.prototype.push = function (chunk) {
    var text = typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true });
    if (text === "") return; // e.g. the first bytes of a character cut in two
    if (this.afterCR && text.charAt(0) === "\n") text = text.slice(1);
    this.afterCR = false;
    this.buffer += text;
    var start = 0;
    for (var i = 0; i < this.buffer.length; i++) {
      var ch = this.buffer.charAt(i);
      if (ch !== "\n" && ch !== "\r") continue;
      var line = this.buffer.slice(start, i);
      if (ch === "\r") {
        if (i + 1 < this.buffer.length) {
          if (this.buffer.charAt(i + 1) === "\n") i++;
        } else {
          this.afterCR = true;
        }
      }
      start = i + 1;
      this.line(line);
    }
    this.buffer = this.buffer.slice(start);
  };

  Parser.prototype.line = function (line) {
    if (line === "") {
      // A blank line ends an event; one with no data is dropped (its id is still kept).
      if (this.hasData) {
        this.onEvent({ type: this.type || "message", data: this.data.join("\n"), id: this.lastEventId });
      }
      this.reset();
      return;
    }
    if (line.charAt(0) === ":") {
      this.onComment(line.slice(1).replace(/^ /, ""));
      return;
    }
    var colon = line.indexOf(":");
    var field = colon < 0 ? line : line.slice(0, colon);
    var value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") {
      this.data.push(value);
      this.hasData = true;
    } else if (field === "event") {
      this.type = value;
    } else if (field === "id") {
      if (value.indexOf("\u0000") < 0) this.lastEventId = value;
    }
    // "retry" and unknown fields: ignored (the console chooses its own reconnection delay).
  };

  global.DcsSse = { Parser: Parser };
})(window);
