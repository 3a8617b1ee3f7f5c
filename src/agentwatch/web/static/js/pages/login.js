// Sign-in page: email and password, sent to POST /api/v1/auth/login by the API client.

import { errorBox, fill, h, labelled } from "../render.js";

export async function render(root, { api, navigate }) {
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true, maxlength: "320" });
  const password = h("input", {
    type: "password",
    name: "password",
    autocomplete: "current-password",
    required: true,
    maxlength: "1024",
  });
  const message = h("div", { class: "message" });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    {
      class: "login",
      method: "post",
      on: {
        submit: async (event) => {
          event.preventDefault();
          submit.disabled = true;
          fill(message);
          try {
            await api.login(email.value, password.value);
            password.value = "";
            navigate("#/overview");
          } catch (err) {
            fill(message, errorBox(err));
          } finally {
            submit.disabled = false;
          }
        },
      },
    },
    h("h1", {}, "Sign in to agentwatch"),
    labelled("Email", email),
    labelled("Password", password),
    submit,
    message,
  );
  fill(root, form);
}
