// The transcodekit example page: no framework, no build step. Every string that came from a
// client (file names) goes into the page through textContent, never as HTML.

const DEFAULT_PRESETS = new Set(['wav', 'flac', 'aac-256k'])
const TERMINAL = new Set(['complete', 'error', 'canceled'])

const $ = (id) => document.getElementById(id)
const form = $('upload-form')
const fileInput = $('file')
const dropzone = $('dropzone')
const submit = $('submit')
const status = $('status')
const errorBox = $('error')
let api = '/api'
let chosen = null
let assetsCursor = null

// API key ---------------------------------------------------------------------------------
// With API_KEYS set, the API wants `Authorization: Bearer <key>`: the page asks once and keeps
// the key in this browser (localStorage) until the server refuses it.

const KEY_ITEM = 'transcodekit.apiKey'
let keyRequired = false
const storedKey = () => (keyRequired ? localStorage.getItem(KEY_ITEM) : null)
const authHeaders = () => {
  const key = storedKey()
  return key ? { authorization: `Bearer ${key}` } : {}
}

class KeyRefused extends Error {}

/** Shows the key form and resolves once a key is saved. */
function askForKey(message) {
  localStorage.removeItem(KEY_ITEM)
  const section = $('api-key')
  section.hidden = false
  $('api-key-message').textContent = message
  $('api-key-input').value = ''
  $('api-key-input').focus()
  return new Promise((resolve) => {
    $('api-key-form').addEventListener(
      'submit',
      (event) => {
        event.preventDefault()
        localStorage.setItem(KEY_ITEM, $('api-key-input').value.trim())
        section.hidden = true
        resolve()
      },
      { once: true },
    )
  })
}
$('forget-key').addEventListener('click', () => {
  localStorage.removeItem(KEY_ITEM)
  location.reload()
})

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag)
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = value
    else if (key in node) node[key] = value
    else node.setAttribute(key, value)
  }
  for (const child of children) node.append(child)
  return node
}

function formatBytes(bytes) {
  if (bytes == null) return ''
  const units = ['B', 'KB', 'MB', 'GB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`
}

function formatDuration(seconds) {
  if (seconds == null) return ''
  const m = Math.floor(seconds / 60)
  const s = (seconds % 60).toFixed(1).padStart(4, '0')
  return `${m}:${s}`
}

function setMeter(id, percent) {
  const value = Math.max(0, Math.min(100, Math.round(percent)))
  $(id).value = value
  $(id).textContent = `${value} %`
  $(id.replace('-progress', '-percent')).textContent = `${value} %`
}

async function request(path, options = {}) {
  const response = await fetch(`${api}${path}`, {
    ...options,
    headers: { ...options.headers, ...authHeaders() },
  })
  if (response.status === 401) throw new KeyRefused('the server refused the API key')
  if (response.status === 204) return null
  const body = await response.json().catch(() => null)
  if (!response.ok)
    throw new Error(body?.message ? `${body.message} (${body.code})` : `HTTP ${response.status}`)
  return body
}

// Presets ---------------------------------------------------------------------------------

async function loadPresets() {
  const { items } = await request('/presets')
  const fieldset = $('presets')
  $('presets-loading').remove()
  for (const needs of ['audio', 'video']) {
    const group = items.filter((preset) => preset.needs === needs)
    fieldset.append(
      el('h3', { textContent: needs === 'audio' ? 'Audio (any input)' : 'Video (video inputs)' }),
    )
    for (const preset of group) {
      const id = `preset-${preset.id}`
      const input = el('input', { type: 'checkbox', id, name: 'presets', value: preset.id })
      input.checked = DEFAULT_PRESETS.has(preset.id)
      input.dataset.needs = needs
      const label = el(
        'label',
        { htmlFor: id },
        preset.id,
        ' ',
        el('small', {
          textContent: `— ${preset.description}${preset.elasticTranscoderPresetId ? ` (${preset.elasticTranscoderPresetId})` : ''}`,
        }),
      )
      fieldset.append(el('div', { class: 'preset' }, input, label))
    }
  }
}

// Choosing a file -------------------------------------------------------------------------

function choose(file) {
  chosen = file ?? null
  $('file-name').textContent = chosen
    ? `${chosen.name} (${formatBytes(chosen.size)})`
    : 'No file chosen'
  const isAudio = chosen?.type.startsWith('audio/')
  for (const box of document.querySelectorAll('input[name="presets"]')) {
    box.disabled = Boolean(isAudio) && box.dataset.needs === 'video'
    if (box.disabled) box.checked = false
  }
  submit.disabled = !chosen
  errorBox.textContent = ''
}

fileInput.addEventListener('change', () => choose(fileInput.files[0]))
for (const type of ['dragenter', 'dragover']) {
  dropzone.addEventListener(type, (event) => {
    event.preventDefault()
    dropzone.classList.add('dragging')
  })
}
for (const type of ['dragleave', 'drop']) {
  dropzone.addEventListener(type, () => dropzone.classList.remove('dragging'))
}
dropzone.addEventListener('drop', (event) => {
  event.preventDefault()
  const file = event.dataTransfer?.files?.[0]
  if (file) choose(file)
})

// Uploading -------------------------------------------------------------------------------

// crypto.randomUUID only exists in secure contexts (https, localhost); getRandomValues everywhere.
function uploadKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  return `upload-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`
}

function upload(file, presets) {
  return new Promise((resolve, reject) => {
    const data = new FormData()
    // Fields first: the server streams the file as it arrives.
    for (const preset of presets) data.append('presets', preset)
    data.append('file', file, file.name)
    const xhr = new XMLHttpRequest()
    xhr.open('POST', `${api}/uploads`)
    xhr.setRequestHeader('Idempotency-Key', uploadKey())
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value)
    xhr.responseType = 'json'
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) setMeter('upload-progress', (event.loaded / event.total) * 100)
    })
    xhr.addEventListener('load', () => {
      const body = xhr.response
      if (xhr.status === 201) resolve(body)
      else
        reject(new Error(body?.message ? `${body.message} (${body.code})` : `HTTP ${xhr.status}`))
    })
    xhr.addEventListener('error', () => reject(new Error('the upload failed (network error)')))
    xhr.send(data)
  })
}

form.addEventListener('submit', async (event) => {
  event.preventDefault()
  if (!chosen) return
  const presets = [...document.querySelectorAll('input[name="presets"]:checked')].map(
    (box) => box.value,
  )
  submit.disabled = true
  errorBox.textContent = ''
  setMeter('upload-progress', 0)
  status.textContent = `Uploading ${chosen.name}…`
  try {
    const { asset, job } = await upload(chosen, presets)
    setMeter('upload-progress', 100)
    status.textContent = `Uploaded ${asset.originalFilename ?? 'the file'}: transcoding.`
    follow(job)
  } catch (error) {
    status.textContent = ''
    errorBox.textContent = error.message
  } finally {
    submit.disabled = !chosen
  }
})

// Following a job -------------------------------------------------------------------------

function player(output) {
  const type = output.contentType
  const box = el('div')
  if (type.startsWith('audio/'))
    box.append(
      el('audio', {
        controls: true,
        preload: 'metadata',
        src: output.url,
        'aria-label': `Play ${output.name}`,
      }),
    )
  else if (type.startsWith('video/'))
    box.append(
      el('video', {
        controls: true,
        preload: 'metadata',
        src: output.url,
        'aria-label': `Play ${output.name}`,
      }),
    )
  else if (type.startsWith('image/'))
    box.append(
      el('img', { class: 'output-image', src: output.url, alt: `${output.name} of the upload` }),
    )
  box.append(
    el(
      'a',
      // The API names the download after the upload (signed into the URL): `download` only
      // asks the browser to save it rather than open it.
      { href: output.downloadUrl ?? output.url, download: '' },
      `Download ${output.name} (${formatBytes(output.size)})`,
    ),
  )
  return box
}

function renderOutputs(list, job, rows) {
  for (const output of job.outputs) {
    let row = rows.get(output.name)
    if (!row) {
      const progress = el('progress', {
        max: 100,
        value: 0,
        'aria-label': `${output.name} progress`,
      })
      const state = el('span', { class: 'state' })
      const li = el(
        'li',
        { 'data-output': output.name },
        el(
          'div',
          { class: 'output-head' },
          el('strong', { textContent: output.name }),
          progress,
          state,
        ),
      )
      row = { li, progress, state, done: false }
      rows.set(output.name, row)
      list.append(li)
    }
    const percent =
      output.state === 'complete' ? 100 : output.state === 'progressing' ? job.progress : 0
    row.progress.value = percent
    row.state.textContent = `${output.state}${output.durationSec ? ` · ${formatDuration(output.durationSec)}` : ''}${output.size ? ` · ${formatBytes(output.size)}` : ''}`
    if (output.state === 'complete' && output.url && !row.done) {
      row.done = true
      row.li.append(player(output))
    }
  }
}

function follow(job) {
  $('job').hidden = false
  const list = $('outputs')
  list.replaceChildren()
  const rows = new Map()
  const update = (current) => {
    setMeter('job-progress', current.progress)
    $('job-state').textContent =
      current.state === 'error'
        ? `Job failed: ${current.errorMessage ?? current.errorCode}`
        : `Job ${current.state}${current.state === 'progressing' ? '' : '.'}`
    renderOutputs(list, current, rows)
  }
  update(job)
  followEvents(job.id, (current) => {
    update(current)
    if (TERMINAL.has(current.state)) {
      status.textContent =
        current.state === 'complete'
          ? 'Done: every output is ready.'
          : `The job ended: ${current.state}.`
      loadAssets(true)
    }
  })
}

/**
 * Reads the job's server-sent events until it ends. Through fetch rather than EventSource,
 * which cannot send the Authorization header; reconnects after a dropped stream.
 */
async function followEvents(id, onJob) {
  for (;;) {
    let last = null
    try {
      const response = await fetch(`${api}/jobs/${id}/events`, { headers: authHeaders() })
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`)
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
      let buffer = ''
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buffer += value
        let end = buffer.indexOf('\n\n')
        while (end !== -1) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          end = buffer.indexOf('\n\n')
          const lines = block.split('\n')
          if (!lines.includes('event: job')) continue
          const data = lines
            .filter((line) => line.startsWith('data: '))
            .map((line) => line.slice(6))
            .join('\n')
          last = JSON.parse(data)
          onJob(last)
        }
      }
    } catch (error) {
      errorBox.textContent = `Lost the job's events: ${error.message}; retrying…`
    }
    if (last && TERMINAL.has(last.state)) return
    await new Promise((resolve) => setTimeout(resolve, 2000))
  }
}

// Earlier uploads -------------------------------------------------------------------------

function assetItem(asset) {
  const name = asset.originalFilename ?? '(no name)'
  const facts = [
    asset.contentType,
    formatBytes(asset.size),
    formatDuration(asset.media.durationSec),
    new Date(asset.createdAt).toLocaleString(),
  ]
    .filter(Boolean)
    .join(' · ')
  const outputs = el('ul', { class: 'outputs' })
  const show = el('button', { type: 'button', class: 'secondary', textContent: 'Show outputs' })
  const remove = el('button', { type: 'button', class: 'secondary', textContent: 'Delete' })
  show.setAttribute('aria-label', `Show outputs of ${name}`)
  remove.setAttribute('aria-label', `Delete ${name}`)
  const li = el(
    'li',
    {},
    el(
      'div',
      { class: 'asset-head' },
      el(
        'div',
        {},
        el('div', { class: 'asset-name', textContent: name }),
        el('small', { textContent: facts }),
      ),
      el('div', { class: 'asset-actions' }, show, remove),
    ),
    outputs,
  )
  show.addEventListener('click', async () => {
    show.disabled = true
    try {
      const { items } = await request(`/jobs?assetId=${asset.id}&limit=1`)
      outputs.replaceChildren()
      if (items[0]) renderOutputs(outputs, items[0], new Map())
      else outputs.append(el('li', { textContent: 'No job.' }))
    } catch (error) {
      errorBox.textContent = error.message
    }
  })
  remove.addEventListener('click', async () => {
    remove.disabled = true
    try {
      await request(`/assets/${asset.id}`, { method: 'DELETE' })
      li.remove()
      status.textContent = `Deleted ${name}.`
    } catch (error) {
      errorBox.textContent = error.message
      remove.disabled = false
    }
  })
  return li
}

async function loadAssets(reset = false) {
  if (reset) {
    assetsCursor = null
    $('assets').replaceChildren()
  }
  const query = assetsCursor ? `?limit=10&cursor=${encodeURIComponent(assetsCursor)}` : '?limit=10'
  const page = await request(`/assets${query}`)
  for (const asset of page.items) $('assets').append(assetItem(asset))
  if (reset && page.items.length === 0)
    $('assets').append(el('li', { textContent: 'Nothing uploaded yet.' }))
  assetsCursor = page.nextCursor
  $('more-assets').hidden = !assetsCursor
}
$('more-assets').addEventListener('click', () => loadAssets())

// Start -----------------------------------------------------------------------------------

try {
  const config = await fetch('/config.json').then((response) => response.json())
  api = config.apiPrefix
  keyRequired = config.auth === 'api-key'
  $('forget-key').hidden = !keyRequired
  if (keyRequired && !storedKey()) await askForKey('This server needs an API key.')
  for (;;) {
    try {
      // One after the other: a refused key fails the first, before it changed the page.
      await loadPresets()
      await loadAssets(true)
      break
    } catch (error) {
      if (!(error instanceof KeyRefused)) throw error
      await askForKey('The server did not accept that key: try again.')
    }
  }
  document.body.dataset.ready = 'true'
} catch (error) {
  errorBox.textContent = `Could not reach the server: ${error.message}`
}
