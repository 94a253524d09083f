// multipart/related (the DICOM results of POST /predict?output=dicom) into its parts, each named by the
// SOP Class UID it carries.

const KINDS = [
  ["1.2.840.10008.5.1.4.1.1.88.", "sr", "Structured Report (TID 1500)"],
  ["1.2.840.10008.5.1.4.1.1.30", "pm", "Parametric Map"],
  ["1.2.840.10008.5.1.4.1.1.7", "sc", "Secondary Capture"], // .7 and the multi-frame .7.x
];

function indexOf(haystack, needle, from) {
  outer: for (let i = from; i <= haystack.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** The Media Storage SOP Class UID (0002,0002) of a DICOM file's meta header (explicit VR little endian). */
export function sopClassOf(body) {
  if (new TextDecoder("latin1").decode(body.subarray(128, 132)) !== "DICM") return null;
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let at = 132;
  while (at + 8 <= body.length && view.getUint16(at, true) === 0x0002) {
    const element = view.getUint16(at + 2, true);
    const vr = String.fromCharCode(body[at + 4], body[at + 5]);
    const long = ["OB", "OW", "OF", "SQ", "UT", "UN"].includes(vr);
    const length = long ? view.getUint32(at + 8, true) : view.getUint16(at + 6, true);
    const start = at + (long ? 12 : 8);
    if (element === 0x0002) return new TextDecoder("latin1").decode(body.subarray(start, start + length)).replace(/[\0 ]+$/, "");
    at = start + length;
  }
  return null;
}

function kindOf(body) {
  const uid = sopClassOf(body) || "";
  for (const [prefix, name, label] of KINDS) if (uid.startsWith(prefix)) return { name, label };
  return { name: "result", label: "DICOM object" };
}

export function splitRelated(bytes, contentType) {
  const m = /boundary="?([^";]+)"?/i.exec(contentType || "");
  if (!m) throw new Error("the answer is not multipart/related");
  const enc = new TextEncoder();
  const delimiter = enc.encode(`--${m[1]}`);
  const blank = enc.encode("\r\n\r\n");
  const parts = [];
  let at = indexOf(bytes, delimiter, 0);
  while (at >= 0) {
    const afterDelimiter = at + delimiter.length;
    if (bytes[afterDelimiter] === 45 && bytes[afterDelimiter + 1] === 45) break; // "--": the closing delimiter
    const bodyStart = indexOf(bytes, blank, afterDelimiter) + blank.length;
    const next = indexOf(bytes, delimiter, bodyStart);
    if (bodyStart < blank.length || next < 0) break;
    const body = bytes.slice(bodyStart, next - 2); // the CRLF before the next delimiter is not part of the body
    parts.push({ body, ...kindOf(body) });
    at = next;
  }
  return parts;
}
