/** One item of an event stream: a comment, or a message (its data lines joined with \n). */
export interface SSEItem {
  comment: boolean;
  data: string;
}

/**
 * SSEParser parses the text/event-stream format incrementally: lines end
 * with \n, \r\n or \r; a blank line dispatches a message; ':' starts a
 * comment. Only data fields are kept (an event's id is in its JSON).
 */
export class SSEParser {
  private buf = '';
  private data: string[] = [];
  private hasData = false;
  private skipLF = false;

  /** push feeds decoded text and returns the items it completed. */
  push(text: string): SSEItem[] {
    const out: SSEItem[] = [];
    let s = this.buf + text;
    this.buf = '';
    let start = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (this.skipLF) {
        this.skipLF = false;
        if (c === 10) { start = i + 1; continue; }
      }
      if (c !== 10 && c !== 13) continue;
      this.line(s.slice(start, i), out);
      if (c === 13) this.skipLF = true;
      start = i + 1;
    }
    this.buf = s.slice(start);
    s = '';
    return out;
  }

  private line(line: string, out: SSEItem[]): void {
    if (line === '') {
      if (this.hasData) out.push({ comment: false, data: this.data.join('\n') });
      this.data = [];
      this.hasData = false;
      return;
    }
    if (line.charCodeAt(0) === 58 /* : */) {
      out.push({ comment: true, data: line.slice(1) });
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    if (field !== 'data') return;
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    this.data.push(value);
    this.hasData = true;
  }
}
