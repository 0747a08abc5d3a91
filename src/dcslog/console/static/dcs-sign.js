/* SDK-HMAC-SHA256 request signing in the browser, byte for byte as dcslog.signing
 * (and the official SDK's signer) verifies it.
 *
 * SHA-256 and HMAC are written out here rather than taken from WebCrypto:
 * crypto.subtle exists only in secure contexts (https, localhost), and the
 * console must also sign in over plain http on a private network. They are
 * small, synchronous and checked against Python's hashlib by the test suite.
 */
(function (global) {
  "use strict";

  var K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  ]);

  function utf8(text) {
    return new TextEncoder().encode(text);
  }

  function hex(bytes) {
    var out = "";
    for (var i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
    return out;
  }

  function rotr(x, n) {
    return (x >>> n) | (x << (32 - n));
  }

  /* SHA-256 (FIPS 180-4) of a Uint8Array; returns the 32-byte digest. */
  function sha256(message) {
    var bitLength = message.length * 8;
    var padded = new Uint8Array(((message.length + 9 + 63) >> 6) << 6);
    padded.set(message);
    padded[message.length] = 0x80;
    var view = new DataView(padded.buffer);
    // Messages here are far below 2^32 bits: the high word of the length stays 0.
    view.setUint32(padded.length - 4, bitLength >>> 0);
    view.setUint32(padded.length - 8, Math.floor(bitLength / 0x100000000));

    var h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                             0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    var w = new Uint32Array(64);
    for (var offset = 0; offset < padded.length; offset += 64) {
      for (var t = 0; t < 16; t++) w[t] = view.getUint32(offset + t * 4);
      for (t = 16; t < 64; t++) {
        var s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >>> 3);
        var s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >>> 10);
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
      }
      var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
      for (t = 0; t < 64; t++) {
        var t1 = (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t]) | 0;
        var t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
    }
    var digest = new Uint8Array(32);
    var out = new DataView(digest.buffer);
    for (var i = 0; i < 8; i++) out.setUint32(i * 4, h[i]);
    return digest;
  }

  /* HMAC-SHA256 (RFC 2104) of Uint8Arrays; returns the 32-byte MAC. */
  function hmacSha256(key, message) {
    if (key.length > 64) key = sha256(key);
    var inner = new Uint8Array(64 + message.length);
    var outer = new Uint8Array(64 + 32);
    for (var i = 0; i < 64; i++) {
      var byte = i < key.length ? key[i] : 0;
      inner[i] = byte ^ 0x36;
      outer[i] = byte ^ 0x5c;
    }
    inner.set(message, 64);
    outer.set(sha256(inner), 64);
    return sha256(outer);
  }

  /* Python's urllib.parse.quote(value, safe="~"): only A-Za-z0-9 - _ . ~ stay as they are. */
  function encode(value) {
    return encodeURIComponent(value).replace(/[!'()*]/g, function (ch) {
      return "%" + ch.charCodeAt(0).toString(16).toUpperCase();
    });
  }

  function decode(value) {
    return decodeURIComponent(value.replace(/\+/g, " "));
  }

  function canonicalUri(rawPath) {
    var path = decodeURIComponent(rawPath).split("/").map(encode).join("/");
    return path.charAt(path.length - 1) === "/" ? path : path + "/";
  }

  function compare(x, y) {
    return x < y ? -1 : x > y ? 1 : 0;
  }

  function canonicalQuery(rawQuery) {
    var pairs = [];
    rawQuery.split("&").forEach(function (item) {
      if (!item) return;
      var at = item.indexOf("=");
      var key = at < 0 ? item : item.slice(0, at);
      var value = at < 0 ? "" : item.slice(at + 1);
      pairs.push([decode(key), decode(value)]);
    });
    pairs.sort(function (p, q) { return compare(p[0], q[0]) || compare(p[1], q[1]); });
    return pairs.map(function (p) { return encode(p[0]) + "=" + encode(p[1]); }).join("&");
  }

  /* A query string from [[name, value], ...] in the canonical encoding, so what goes on the wire is what is signed. */
  function queryString(pairs) {
    return pairs.filter(function (p) { return p[1] !== undefined && p[1] !== null && p[1] !== ""; })
      .map(function (p) { return encode(String(p[0])) + "=" + encode(String(p[1])); }).join("&");
  }

  function sdkDate(now) {
    return now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  }

  /* The headers that make `method path?query` verify, as dcslog.signing.sign_request builds them.
   * opts: accessKey, secretKey, method, path (as sent, percent-encoded), query (raw, no "?"),
   * host (what the browser sends as Host: location.host), body (string, default ""), now (Date). */
  function signRequest(opts) {
    var date = sdkDate(opts.now || new Date());
    var signed = { "host": opts.host, "x-sdk-date": date };
    var names = Object.keys(signed).sort();
    var canonicalHeaders = names.map(function (n) { return n + ":" + String(signed[n]).trim() + "\n"; }).join("");
    var canonicalRequest = [
      opts.method.toUpperCase(), canonicalUri(opts.path || "/"), canonicalQuery(opts.query || ""),
      canonicalHeaders, names.join(";"), hex(sha256(utf8(opts.body || "")))
    ].join("\n");
    var stringToSign = "SDK-HMAC-SHA256\n" + date + "\n" + hex(sha256(utf8(canonicalRequest)));
    var signature = hex(hmacSha256(utf8(opts.secretKey), utf8(stringToSign)));
    return {
      "X-Sdk-Date": date,
      "Authorization": "SDK-HMAC-SHA256 Access=" + opts.accessKey + ", SignedHeaders=" + names.join(";") +
        ", Signature=" + signature
    };
  }

  global.DcsSign = {
    sha256Hex: function (text) { return hex(sha256(utf8(text))); },
    hmacSha256Hex: function (key, text) { return hex(hmacSha256(utf8(key), utf8(text))); },
    encode: encode,
    canonicalUri: canonicalUri,
    canonicalQuery: canonicalQuery,
    queryString: queryString,
    signRequest: signRequest
  };
})(window);
