// Allure 3 report configuration: the behaviors tree as risk -> category -> policy.
// Usage: npx allure generate allure-results --config allurerc.mjs
export default {
  name: "pytest-agentsim",
  plugins: {
    awesome: {
      options: { groupBy: ["epic", "feature", "story"] },
    },
  },
};
