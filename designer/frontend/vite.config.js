// Builds the canvas into one ES module (`dist/flowyard_canvas.js`) with `vue` external: NiceGUI
// serves its own Vue through its import map. The file name gives the element its HTML tag.
import { fileURLToPath } from 'node:url'
import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vite'

export default defineConfig({
  plugins: [vue()],
  // Library mode leaves `process.env.NODE_ENV` in Vue Flow's code: it must be defined here.
  define: { 'process.env.NODE_ENV': JSON.stringify('production') },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    minify: true,
    cssCodeSplit: false,
    lib: {
      entry: fileURLToPath(new URL('./src/index.js', import.meta.url)),
      formats: ['es'],
      fileName: () => 'flowyard_canvas.js',
    },
    rolldownOptions: {
      external: ['vue'],
      output: { codeSplitting: false },
    },
  },
})
