// The console page's CSP allows inline <style> only with this page's nonce (see the
// server's web/console.rs). xterm.js creates style elements; give each one the nonce.

const meta = document.querySelector<HTMLMetaElement>('meta[name="ironmesh-style-nonce"]');
const nonce = meta?.content ?? "";
if (nonce) {
  const create = document.createElement.bind(document);
  document.createElement = ((tag: string, options?: ElementCreationOptions) => {
    const el = create(tag, options);
    if (tag.toLowerCase() === "style") (el as HTMLStyleElement).nonce = nonce;
    return el;
  }) as typeof document.createElement;
}
