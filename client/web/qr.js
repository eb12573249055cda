// A QR code (ISO/IEC 18004) of a short text, for printing an entry's link: byte mode, error
// correction level M, versions 1 to 10 (up to 213 bytes), the mask with the lowest penalty.
// qrModules(text) returns the square of modules (true = dark), or null when the text is too long.

// Per version 1..10 at level M: total codewords, error-correction codewords per block, blocks.
const TOTAL = [0, 26, 44, 70, 100, 134, 172, 196, 242, 292, 346];
const ECC_PER_BLOCK = [0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26];
const BLOCKS = [0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5];
// Centres of the alignment patterns, per version.
const ALIGN = [[], [], [6, 18], [6, 22], [6, 26], [6, 30], [6, 34], [6, 22, 38], [6, 24, 42],
  [6, 26, 46], [6, 28, 50]];
const LEVEL_M_BITS = 0; // format bits of level M

// GF(256) with the QR polynomial x^8 + x^4 + x^3 + x^2 + 1.
function gfMul(a, b) {
  let r = 0;
  for (let i = 7; i >= 0; i -= 1) {
    r = (r << 1) ^ ((r >>> 7) * 0x11d);
    r ^= ((b >>> i) & 1) * a;
  }
  return r & 0xff;
}

// The generator polynomial of degree n (roots 2^0 .. 2^(n-1)), leading 1 left out.
function rsDivisor(n) {
  const result = new Array(n).fill(0);
  result[n - 1] = 1;
  let root = 1;
  for (let i = 0; i < n; i += 1) {
    for (let j = 0; j < n; j += 1) {
      result[j] = gfMul(result[j], root);
      if (j + 1 < n) result[j] ^= result[j + 1];
    }
    root = gfMul(root, 2);
  }
  return result;
}

function rsRemainder(data, divisor) {
  const result = new Array(divisor.length).fill(0);
  for (const b of data) {
    const factor = b ^ result.shift();
    result.push(0);
    for (let i = 0; i < result.length; i += 1) result[i] ^= gfMul(divisor[i], factor);
  }
  return result;
}

function codewords(bytes, version) {
  const total = TOTAL[version];
  const eccLen = ECC_PER_BLOCK[version];
  const blocks = BLOCKS[version];
  const dataLen = total - eccLen * blocks;
  // Bit stream: byte mode, count, data, terminator, padding.
  const bits = [];
  const put = (value, n) => { for (let i = n - 1; i >= 0; i -= 1) bits.push((value >>> i) & 1); };
  put(0b0100, 4);
  put(bytes.length, version < 10 ? 8 : 16);
  for (const b of bytes) put(b, 8);
  put(0, Math.min(4, dataLen * 8 - bits.length));
  put(0, (8 - (bits.length % 8)) % 8);
  const data = [];
  for (let i = 0; i < bits.length; i += 8) {
    let b = 0;
    for (let j = 0; j < 8; j += 1) b = (b << 1) | bits[i + j];
    data.push(b);
  }
  for (let pad = 0xec; data.length < dataLen; pad ^= 0xec ^ 0x11) data.push(pad);
  // Blocks: the short ones first; each gets its error-correction codewords.
  const shortBlocks = blocks - (total % blocks);
  const shortLen = Math.floor(total / blocks);
  const divisor = rsDivisor(eccLen);
  const split = [];
  for (let i = 0, k = 0; i < blocks; i += 1) {
    const len = shortLen - eccLen + (i < shortBlocks ? 0 : 1);
    const dat = data.slice(k, k + len);
    k += len;
    split.push({ dat, ecc: rsRemainder(dat, divisor) });
  }
  // Interleave the data codewords, then the error-correction codewords.
  const out = [];
  for (let i = 0; i <= shortLen - eccLen; i += 1) {
    for (const b of split) if (i < b.dat.length) out.push(b.dat[i]);
  }
  for (let i = 0; i < eccLen; i += 1) for (const b of split) out.push(b.ecc[i]);
  return out;
}

// `value` followed by its BCH remainder (a `polyDegree`-bit remainder modulo `poly`).
function bchBits(value, poly, polyDegree) {
  let rem = value;
  for (let i = 0; i < polyDegree; i += 1) {
    rem = (rem << 1) ^ ((rem >>> (polyDegree - 1)) * poly);
  }
  return (value << polyDegree) | rem;
}

class Grid {
  constructor(version) {
    this.size = version * 4 + 17;
    this.dark = Array.from({ length: this.size }, () => new Array(this.size).fill(false));
    this.fixed = Array.from({ length: this.size }, () => new Array(this.size).fill(false));
  }

  set(x, y, dark) {
    this.dark[y][x] = dark;
    this.fixed[y][x] = true;
  }
}

function drawFunctionPatterns(g, version) {
  const n = g.size;
  for (let i = 0; i < n; i += 1) {
    g.set(6, i, i % 2 === 0);
    g.set(i, 6, i % 2 === 0);
  }
  for (const [cx, cy] of [[3, 3], [n - 4, 3], [3, n - 4]]) {
    for (let dy = -4; dy <= 4; dy += 1) {
      for (let dx = -4; dx <= 4; dx += 1) {
        const x = cx + dx;
        const y = cy + dy;
        if (x < 0 || y < 0 || x >= n || y >= n) continue;
        const d = Math.max(Math.abs(dx), Math.abs(dy));
        g.set(x, y, d !== 2 && d !== 4);
      }
    }
  }
  const centres = ALIGN[version];
  const last = centres.length - 1;
  for (let i = 0; i <= last; i += 1) {
    for (let j = 0; j <= last; j += 1) {
      if ((i === 0 && j === 0) || (i === 0 && j === last) || (i === last && j === 0)) continue;
      for (let dy = -2; dy <= 2; dy += 1) {
        for (let dx = -2; dx <= 2; dx += 1) {
          g.set(centres[i] + dx, centres[j] + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
        }
      }
    }
  }
  drawFormat(g, 0); // reserve the areas; real bits once the mask is chosen
  if (version >= 7) {
    const bits = bchBits(version, 0x1f25, 12);
    for (let i = 0; i < 18; i += 1) {
      const bit = ((bits >>> i) & 1) === 1;
      const a = n - 11 + (i % 3);
      const b = Math.floor(i / 3);
      g.set(a, b, bit);
      g.set(b, a, bit);
    }
  }
}

function drawFormat(g, mask) {
  const n = g.size;
  const bits = bchBits((LEVEL_M_BITS << 3) | mask, 0x537, 10) ^ 0x5412;
  const bit = (i) => ((bits >>> i) & 1) === 1;
  for (let i = 0; i <= 5; i += 1) g.set(8, i, bit(i));
  g.set(8, 7, bit(6));
  g.set(8, 8, bit(7));
  g.set(7, 8, bit(8));
  for (let i = 9; i < 15; i += 1) g.set(14 - i, 8, bit(i));
  for (let i = 0; i < 8; i += 1) g.set(n - 1 - i, 8, bit(i));
  for (let i = 8; i < 15; i += 1) g.set(8, n - 15 + i, bit(i));
  g.set(8, n - 8, true); // the dark module
}

function drawCodewords(g, data) {
  const n = g.size;
  let i = 0;
  for (let right = n - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5;
    for (let vert = 0; vert < n; vert += 1) {
      for (let j = 0; j < 2; j += 1) {
        const x = right - j;
        const upward = ((right + 1) & 2) === 0;
        const y = upward ? n - 1 - vert : vert;
        if (!g.fixed[y][x] && i < data.length * 8) {
          g.dark[y][x] = ((data[i >>> 3] >>> (7 - (i & 7))) & 1) === 1;
          i += 1;
        }
      }
    }
  }
}

const MASKS = [
  (x, y) => (x + y) % 2 === 0,
  (x, y) => y % 2 === 0,
  (x) => x % 3 === 0,
  (x, y) => (x + y) % 3 === 0,
  (x, y) => (Math.floor(x / 3) + Math.floor(y / 2)) % 2 === 0,
  (x, y) => ((x * y) % 2) + ((x * y) % 3) === 0,
  (x, y) => (((x * y) % 2) + ((x * y) % 3)) % 2 === 0,
  (x, y) => (((x + y) % 2) + ((x * y) % 3)) % 2 === 0,
];

function applyMask(g, mask) {
  for (let y = 0; y < g.size; y += 1) {
    for (let x = 0; x < g.size; x += 1) {
      if (!g.fixed[y][x] && MASKS[mask](x, y)) g.dark[y][x] = !g.dark[y][x];
    }
  }
}

// The standard's penalty: runs of five or more, 2x2 blocks, finder-like patterns, imbalance.
function penalty(g) {
  const n = g.size;
  let score = 0;
  const line = (get) => {
    let s = 0;
    let run = 1;
    for (let i = 1; i <= n; i += 1) {
      if (i < n && get(i) === get(i - 1)) {
        run += 1;
      } else {
        if (run >= 5) s += run - 2;
        run = 1;
      }
    }
    const seq = [];
    for (let i = 0; i < n; i += 1) seq.push(get(i) ? 1 : 0);
    const padded = [0, 0, 0, 0, ...seq, 0, 0, 0, 0];
    for (let i = 0; i + 11 <= padded.length; i += 1) {
      const w = padded.slice(i, i + 11).join('');
      if (w === '10111010000' || w === '00001011101') s += 40;
    }
    return s;
  };
  for (let y = 0; y < n; y += 1) score += line((x) => g.dark[y][x]);
  for (let x = 0; x < n; x += 1) score += line((y) => g.dark[y][x]);
  let darkCount = 0;
  for (let y = 0; y < n; y += 1) {
    for (let x = 0; x < n; x += 1) {
      if (g.dark[y][x]) darkCount += 1;
      if (x + 1 < n && y + 1 < n) {
        const c = g.dark[y][x];
        if (c === g.dark[y][x + 1] && c === g.dark[y + 1][x] && c === g.dark[y + 1][x + 1]) score += 3;
      }
    }
  }
  const k = Math.floor(Math.abs(darkCount * 20 - n * n * 10) / (n * n));
  return score + k * 10;
}

export function qrModules(text) {
  const bytes = new TextEncoder().encode(text);
  let version = 0;
  for (let v = 1; v <= 10; v += 1) {
    const dataBits = (TOTAL[v] - ECC_PER_BLOCK[v] * BLOCKS[v]) * 8;
    if (4 + (v < 10 ? 8 : 16) + bytes.length * 8 <= dataBits) { version = v; break; }
  }
  if (!version) return null;
  const data = codewords(bytes, version);
  let best = null;
  let bestScore = Infinity;
  for (let mask = 0; mask < 8; mask += 1) {
    const g = new Grid(version);
    drawFunctionPatterns(g, version);
    drawCodewords(g, data);
    applyMask(g, mask);
    drawFormat(g, mask);
    const score = penalty(g);
    if (score < bestScore) { best = g; bestScore = score; }
  }
  return best.dark;
}

// An SVG element drawing `text` as a QR code with a quiet zone of four modules.
export function qrSvg(text, label) {
  const modules = qrModules(text);
  if (!modules) return null;
  const NS = 'http://www.w3.org/2000/svg';
  const n = modules.length + 8;
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${n} ${n}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  svg.setAttribute('shape-rendering', 'crispEdges');
  svg.setAttribute('class', 'qr');
  const bg = document.createElementNS(NS, 'rect');
  bg.setAttribute('width', String(n));
  bg.setAttribute('height', String(n));
  bg.setAttribute('fill', '#fff');
  svg.append(bg);
  let d = '';
  modules.forEach((row, y) => row.forEach((dark, x) => { if (dark) d += `M${x + 4} ${y + 4}h1v1h-1z`; }));
  const path = document.createElementNS(NS, 'path');
  path.setAttribute('d', d);
  path.setAttribute('fill', '#000');
  svg.append(path);
  return svg;
}
