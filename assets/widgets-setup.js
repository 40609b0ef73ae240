// Runs before require.js and the widget manager on every page with widgets (nb_ipywidgets_js in
// _config.yml), so that they work from _static/ with no network.
(function () {
  var widgets = new URL("widgets/", document.currentScript.src).href;

  // 1. Where the widget manager's font files are. embed-amd.js works that out from the AMD ids
  // of its modules ("@jupyter-widgets/..."), which require.js resolves against the page's own
  // folder: <page dir>/@jupyter-widgets/html-manager/dist/<hash>.woff2, files that don't exist.
  // A global `require` object defined before require.js loads is its configuration: mapping
  // those ids to _static/widgets/ sends every font request to the copies there. Two parts of
  // the bundle read __jupyter_widgets_assets_path__ instead; it names the same folder.
  window.__jupyter_widgets_assets_path__ = widgets;
  window.require = {
    paths: {
      "@jupyter-widgets/html-manager/dist": widgets.slice(0, -1),
      "@jupyter-widgets": widgets.slice(0, -1)
    }
  };

  // 2. The widgets typeset their labels with MathJax 2's MathJax.Hub.Queue whenever a global
  // MathJax exists; the book loads MathJax 3 (deferred, after this script), which has no Hub,
  // so every label would throw "Cannot read properties of undefined (reading 'Queue')".
  // Give MathJax 3 that one entry point: labels queued before it is ready are typeset then.
  if (window.MathJax === undefined || window.MathJax.version) return;  // no maths, or loaded
  var config = window.MathJax, pending = [];
  config.Hub = { Queue: function (job) { pending.push(job[2]); } };
  config.startup = config.startup || {};
  config.startup.ready = function () {
    MathJax.startup.defaultReady();
    MathJax.Hub = { Queue: function (job) { MathJax.typesetPromise([job[2]]); } };
    if (pending.length) MathJax.typesetPromise(pending);
  };
})();
