/**
 * A URL without its password, for messages. One without a host (`user:pw@host/p` parses as the
 * scheme `user:`) or that does not parse has whatever comes before an `@` masked: it may be a
 * password all the same.
 */
export function redact(url: string): string {
  if (URL.canParse(url)) {
    const u = new URL(url);
    if (u.host) {
      if (u.password) u.password = '***';
      return u.toString();
    }
  }
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/]*@/i, '$1***@');
}
