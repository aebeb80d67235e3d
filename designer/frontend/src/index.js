// Entry of the NiceGUI element: the component is the module's default export.
export { default } from './FlowCanvas.vue'
