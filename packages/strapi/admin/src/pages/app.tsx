import { Route, Routes } from 'react-router-dom'
import { FilePage } from './file-page.tsx'
import { JobsPage } from './jobs-page.tsx'

/** The plugin's pages, under /admin/plugins/transcodekit. */
export default function App() {
  return (
    <Routes>
      <Route index element={<JobsPage />} />
      <Route path="files/:fileId" element={<FilePage />} />
    </Routes>
  )
}
