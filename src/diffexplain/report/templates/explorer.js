(function () {
  "use strict";
  // The attention explorer of a diffexplain report: hover, focus or click a word to lay its heatmap
  // over the image; the sliders pick a time group and a layer ("all" averages them). Everything it
  // shows is in the page (data: images); without JavaScript the static figures below stay.
  var holder = document.getElementById("dx-explorer");
  var source = document.getElementById("dx-explorer-data");
  if (!holder || !source) {
    return;
  }
  var data = JSON.parse(source.textContent);
  var heat = holder.querySelector(".dx-heat");
  var time = holder.querySelector("input[name=time]");
  var layer = holder.querySelector("input[name=layer]");
  var label = holder.querySelector(".dx-label");
  var buttons = holder.querySelectorAll("button[data-word]");
  var state = {word: 0};

  function show() {
    var t = Number(time.value), l = Number(layer.value);
    heat.src = data.maps[state.word][t][l];
    heat.dataset.shown = state.word + "/" + t + "/" + l;
    label.textContent = data.words[state.word] + " \u00b7 time " + data.times[t] + " \u00b7 layer " + data.layers[l];
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].setAttribute("aria-pressed", String(Number(buttons[i].dataset.word) === state.word));
    }
  }

  function pick(event) {
    state.word = Number(event.currentTarget.dataset.word);
    show();
  }

  for (var i = 0; i < buttons.length; i++) {
    buttons[i].addEventListener("mouseenter", pick);
    buttons[i].addEventListener("focus", pick);
    buttons[i].addEventListener("click", pick);
  }
  time.addEventListener("input", show);
  layer.addEventListener("input", show);
  holder.hidden = false;
  show();
})();
